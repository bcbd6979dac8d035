import RollbackCore

/// Runs the operator's own argv with `ROLLBACKD_FROM`, `ROLLBACKD_TO` and `ROLLBACKD_INCIDENT` (and
/// `ROLLBACKD_STRATEGY`) in its environment; never a shell string with values pasted in. The command must be safe
/// to run again: the runner does not re-run it once it completed, but one interrupted half-way runs again.
public struct CommandExecutor: RollbackExecutor {
    public let config: CommandStrategy
    public let phaseTimeout: Interval
    public var strategyName: String { "command" }

    public init(_ config: CommandStrategy, phaseTimeout: Interval) {
        self.config = config
        self.phaseTimeout = phaseTimeout
    }

    public func currentVersion() async throws -> String { throw ExecutorError.versionUnknown(strategyName) }
    public func availableVersions() async throws -> [String] { [] }

    public func precheck(target: String) async throws {
        guard !target.isEmpty else { throw ExecutorError(strategyName, "empty target version") }
        guard let program = config.argv.first else { throw ExecutorError(strategyName, "empty argv") }
        if program.contains("/") {
            guard Paths.exists(program) else { throw ExecutorError(strategyName, "\(program) does not exist") }
        }
    }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        RollbackPlan(
            strategy: strategyName, from: from, to: to, incident: incident,
            phases: [
                RollbackPhase(
                    name: "command",
                    description:
                        "run \(ProcessRunner.display(config.argv)) with ROLLBACKD_FROM=\(from) ROLLBACKD_TO=\(to) ROLLBACKD_INCIDENT=\(incident)",
                    timeout: phaseTimeout)
            ])
    }

    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        guard phase.name == "command" else { throw ExecutorError(strategyName, "unknown phase \(phase.name)") }
        _ = try await Command.run(
            config.argv, strategy: strategyName, environment: RollbackEnvironment.of(plan),
            timeout: phase.timeout)
    }
}
