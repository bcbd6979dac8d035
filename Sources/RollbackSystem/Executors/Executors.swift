import RollbackCore

/// Builds the executor for `rollback.strategy`, or for the plan of `rollback.steps`.
public enum Executors {
    /// - Parameter stateDirectory: where executors keep copies of files they overwrite (`$STATE_DIRECTORY`).
    public static func make(_ config: RollbackConfig, stateDirectory: String) -> any RollbackExecutor {
        guard config.isPlan else {
            return make(config.strategy, phaseTimeout: config.phaseTimeout, stateDirectory: stateDirectory)
        }
        return PlanExecutor(
            steps: config.steps,
            executors: config.steps.enumerated().map { i, step in
                if case let .haproxyCanary(s) = step.strategy, !step.restore.isEmpty {
                    return HAProxyCanaryExecutor(
                        s, phaseTimeout: step.timeout ?? config.phaseTimeout, restore: step.restore)
                }
                return make(
                    step.strategy, phaseTimeout: step.timeout ?? config.phaseTimeout,
                    stateDirectory: PlanExecutor.stateDirectory(of: i, in: stateDirectory))
            },
            versionStep: config.versionStepIndex)
    }

    /// The executor of one strategy.
    public static func make(
        _ strategy: RollbackStrategy, phaseTimeout t: Interval, stateDirectory: String
    ) -> any RollbackExecutor {
        switch strategy {
        case let .symlink(s): return SymlinkExecutor(s, phaseTimeout: t)
        case let .nginxBlueGreen(s): return NginxBlueGreenExecutor(s, phaseTimeout: t, stateDirectory: stateDirectory)
        case let .haproxyCanary(s): return HAProxyCanaryExecutor(s, phaseTimeout: t)
        case let .systemdUnit(s): return SystemdUnitExecutor(s, phaseTimeout: t)
        case let .kubernetes(s): return KubernetesExecutor(s, phaseTimeout: t)
        case let .dockerSwarm(s): return DockerSwarmExecutor(s, phaseTimeout: t)
        case let .featureFlag(s): return FeatureFlagExecutor(s, phaseTimeout: t)
        case let .config(s): return ConfigExecutor(s, phaseTimeout: t, stateDirectory: stateDirectory)
        case let .command(s): return CommandExecutor(s, phaseTimeout: t)
        }
    }
}

/// A plan of steps (`rollback.steps`) as one executor: its plan is every step's phases in order, each phase named
/// `<step>.<phase>` and carrying its step, so the runner's one journal covers the whole plan and a resume after a
/// crash continues after the last completed phase. The live version is the version step's.
public struct PlanExecutor: RollbackExecutor {
    public static let name = "plan"
    public let steps: [RollbackStep]
    public let executors: [any RollbackExecutor]
    public let versionStep: Int

    public init(steps: [RollbackStep], executors: [any RollbackExecutor], versionStep: Int) {
        precondition(steps.count == executors.count && !steps.isEmpty)
        self.steps = steps
        self.executors = executors
        self.versionStep = versionStep
    }

    /// Each step keeps the copies of the files it overwrites apart (two config steps may name the same file).
    static func stateDirectory(of step: Int, in stateDirectory: String) -> String {
        "\(stateDirectory)/step-\(step + 1)"
    }

    public var strategyName: String { Self.name }

    public func currentVersion() async throws -> String {
        try await executors[versionStep].currentVersion()
    }

    public func availableVersions() async throws -> [String] {
        try await executors[versionStep].availableVersions()
    }

    /// Prechecks every step; the error lists each step that failed.
    public func precheck(target: String) async throws {
        var failures: [String] = []
        for (i, e) in executors.enumerated() {
            do { try await e.precheck(target: target) } catch {
                failures.append("step \(steps[i].label(index: i)): \(error)")
            }
        }
        if !failures.isEmpty { throw ExecutorError(Self.name, failures.joined(separator: "; ")) }
    }

    /// A step's restore schedule (its traffic given back gradually), run after every step's own phases.
    static func restorePhases(_ executor: any RollbackExecutor) -> [RollbackPhase] {
        (executor as? HAProxyCanaryExecutor)?.restorePhases() ?? []
    }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        var phases: [RollbackPhase] = []
        func add(_ p: RollbackPhase, step i: Int) {
            phases.append(
                RollbackPhase(
                    name: "\(i + 1).\(p.name)", description: p.description, timeout: p.timeout, step: i + 1,
                    hold: p.hold))
        }
        for (i, e) in executors.enumerated() {
            for p in e.plan(from: from, to: to, incident: incident).phases { add(p, step: i) }
        }
        for (i, e) in executors.enumerated() {
            for p in Self.restorePhases(e) { add(p, step: i) }
        }
        return RollbackPlan(
            strategy: Self.name, from: from, to: to, incident: incident, phases: phases,
            steps: steps.enumerated().map { i, s in
                PlanStep(
                    label: s.label(index: i), strategy: s.strategy.name, onFailure: s.onFailure.rawValue,
                    approval: s.approval)
            })
    }

    /// Runs the step's own phase with the step's own plan (so its commands see ROLLBACKD_STRATEGY of the step).
    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        let (executor, stepPhase, own) = try stepPhase(phase, of: plan)
        try await executor.run(phase: stepPhase, of: own)
    }

    public func drainAgain(after hold: RollbackPhase, of plan: RollbackPlan) async throws -> String {
        let (executor, stepPhase, own) = try stepPhase(hold, of: plan)
        return try await executor.drainAgain(after: stepPhase, of: own)
    }

    /// The step's executor, its own phase and its own plan for a phase `<step>.<phase>` of the plan.
    func stepPhase(_ phase: RollbackPhase, of plan: RollbackPlan) throws -> (
        any RollbackExecutor, RollbackPhase, RollbackPlan
    ) {
        let prefix = phase.step.map { "\($0)." } ?? ""
        guard let n = phase.step, executors.indices.contains(n - 1), phase.name.hasPrefix(prefix) else {
            throw ExecutorError(Self.name, "phase \(phase.name) belongs to no step of this plan")
        }
        let executor = executors[n - 1]
        let own = executor.plan(from: plan.from, to: plan.to, incident: plan.incident)
        let name = String(phase.name.dropFirst(prefix.count))
        guard let stepPhase = (own.phases + Self.restorePhases(executor)).first(where: { $0.name == name }) else {
            throw ExecutorError(Self.name, "step \(steps[n - 1].label(index: n - 1)) has no phase \(name)")
        }
        return (executor, stepPhase, own)
    }
}
