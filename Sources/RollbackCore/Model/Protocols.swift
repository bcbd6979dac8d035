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

    public init(name: String, description: String, timeout: Interval) {
        self.name = name
        self.description = description
        self.timeout = timeout
    }
}

/// What an executor would do to go from one release to another.
public struct RollbackPlan: Sendable, Equatable, Codable {
    public var strategy: String
    public var from: String
    public var to: String
    public var incident: String
    public var phases: [RollbackPhase]

    public init(strategy: String, from: String, to: String, incident: String, phases: [RollbackPhase]) {
        self.strategy = strategy
        self.from = from
        self.to = to
        self.incident = incident
        self.phases = phases
    }

    /// A readable rendering for `--dry-run` and journald.
    public var text: String {
        var lines = ["rollback \(from) -> \(to) with strategy \(strategy) (incident \(incident)):"]
        for (i, p) in phases.enumerated() {
            lines.append("  \(i + 1). \(p.name) [timeout \(p.timeout)]: \(p.description)")
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
}
