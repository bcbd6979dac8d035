/// The world plugs into Core through these protocols; RollbackSystem provides the real implementations and tests
/// provide fakes (for Core's own logic only, never in place of the thing a system test is testing).

/// A wall clock. Core never reads the time itself.
public protocol WallClock: Sendable {
    func now() -> Timestamp
}

/// Produces samples for one or more metrics (several metrics may share one fetch).
public protocol MetricSource: Sendable {
    /// The metric names this source answers for.
    var metricNames: [String] { get }
    /// One sample per metric name; a failure is `.noData(reason:)`, never a thrown error.
    func sample(now: Timestamp) async -> [String: SampleValue]
}

/// Receives every event. Must not block the caller for long: delivery that can be slow (webhooks) is queued.
public protocol Notifier: Sendable {
    func notify(_ event: Event) async
}

/// One named step of a rollback.
public struct RollbackPhase: Sendable, Equatable, Codable {
    public var name: String
    /// What the phase does, concretely enough to review in a dry run (the argv, the file, the socket command).
    public var description: String
    public var timeout: Interval
    /// In a plan of steps (`rollback.steps`): the 1-based step this phase belongs to; nil for one strategy.
    public var step: Int?
    /// A hold of a `restore` schedule: the runner does not run this phase through the executor; it watches the
    /// triggers this long (`timeout` bounds the whole watch). A trigger that fires makes the executor drain again
    /// (`drainAgain`) and fails the phase.
    public var hold: Interval?

    public init(name: String, description: String, timeout: Interval, step: Int? = nil, hold: Interval? = nil) {
        self.name = name
        self.description = description
        self.timeout = timeout
        self.step = step
        self.hold = hold
    }
}

/// One step of a plan as the runner and the journal see it.
public struct PlanStep: Sendable, Equatable, Codable {
    /// `2 "flags" (feature-flag)`.
    public var label: String
    public var strategy: String
    /// `halt` or `continue`.
    public var onFailure: String
    /// The plan stops before this step until `rollbackd approve` (`approval: true`).
    public var approval: Bool

    public init(label: String, strategy: String, onFailure: String, approval: Bool = false) {
        self.label = label
        self.strategy = strategy
        self.onFailure = onFailure
        self.approval = approval
    }

    public var continues: Bool { onFailure == "continue" }
}

/// What an executor would do to go from one release to another.
public struct RollbackPlan: Sendable, Equatable, Codable {
    public var strategy: String
    public var from: String
    public var to: String
    public var incident: String
    public var phases: [RollbackPhase]
    /// The steps of a plan (`rollback.steps`), in order; empty for one strategy. Each phase names its step.
    public var steps: [PlanStep]

    public init(
        strategy: String, from: String, to: String, incident: String, phases: [RollbackPhase], steps: [PlanStep] = []
    ) {
        self.strategy = strategy
        self.from = from
        self.to = to
        self.incident = incident
        self.phases = phases
        self.steps = steps
    }

    /// The step of a phase of a plan.
    public func step(of phase: RollbackPhase) -> PlanStep? {
        guard let n = phase.step, steps.indices.contains(n - 1) else { return nil }
        return steps[n - 1]
    }

    /// A readable rendering for `--dry-run` and journald.
    public var text: String {
        guard !steps.isEmpty else {
            var lines = ["rollback \(from) -> \(to) with strategy \(strategy) (incident \(incident)):"]
            for (i, p) in phases.enumerated() {
                lines.append("  \(i + 1). \(p.name) [timeout \(p.timeout)]: \(p.description)")
            }
            return lines.joined(separator: "\n")
        }
        var lines = ["rollback \(from) -> \(to) with a plan of \(steps.count) steps (incident \(incident)):"]
        var shown: Int?
        for (i, p) in phases.enumerated() {
            if let n = p.step, n != shown, let step = step(of: p) {
                shown = n
                lines.append(
                    "  step \(step.label)" + (step.continues ? " [onFailure continue]" : "")
                        + (step.approval ? " [waits for rollbackd approve]" : "") + ":")
            }
            lines.append("    \(i + 1). \(p.name) [timeout \(p.timeout)]: \(p.description)")
        }
        return lines.joined(separator: "\n")
    }
}

/// A strategy-specific rollback: discovery, precheck, plan, and one phase at a time. Every phase is idempotent:
/// running it again after a crash converges and never applies twice.
///
/// Contract (RollbackSystem's `ExecutionRunner` relies on it):
/// - `plan` and `precheck` change nothing; a dry run is the plan printed.
/// - `run(phase:of:)` stops within `phase.timeout` (its commands and requests carry that timeout) and, when it
///   fails, leaves a clear state (e.g. config or nginx strategies put the previous files back when validation fails).
/// - Strategies that cannot tell the live release (command, canary weights, flags) throw from `currentVersion`
///   with a message saying to set `version` in thresholds.json.
public protocol RollbackExecutor: Sendable {
    var strategyName: String { get }
    /// The version live now.
    func currentVersion() async throws -> String
    /// Versions the strategy can deploy (may be empty where the strategy cannot list them).
    func availableVersions() async throws -> [String]
    /// Throws an error naming what is wrong when `target` cannot be deployed.
    func precheck(target: String) async throws
    func plan(from: String, to: String, incident: String) -> RollbackPlan
    /// Runs one phase of `plan`; throws on failure with a message naming the command, file or URL at fault.
    func run(phase: RollbackPhase, of plan: RollbackPlan) async throws
    /// After a trigger fired during `hold` (a phase with `hold` set): takes the traffic given back so far away
    /// again (weight 0 on the restored side) and returns what it did.
    func drainAgain(after hold: RollbackPhase, of plan: RollbackPlan) async throws -> String
}

extension RollbackExecutor {
    /// Strategies without a restore schedule have no hold phases.
    public func drainAgain(after hold: RollbackPhase, of plan: RollbackPlan) async throws -> String {
        "nothing to drain (\(strategyName) restores no traffic)"
    }
}
