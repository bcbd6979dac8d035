import RollbackCore
import RollbackSystem

/// What the daemon needs from the world, built from a configuration (sources, executor, notifiers). Swapped on a
/// successful reload.
public struct DaemonWorld: Sendable {
    /// One sample per metric; failures are `.noData(reason:)`.
    public var sample: @Sendable (Timestamp) async -> SampledMetrics
    /// The live version, or nil with a reason.
    public var readVersion: @Sendable () async -> (version: String?, reason: String?)
    /// Versions the strategy can deploy (nil: it cannot tell).
    public var deployable: @Sendable () async -> Set<String>?
    /// Journald and webhooks; must return quickly (webhooks are spooled).
    public var notify: @Sendable (Event) async -> Void
    /// Runs the rollback (gates before execution, then phases); `phase` reports each phase as it ends.
    public var executeRollback:
        @Sendable (RollbackOrder, _ phase: @escaping @Sendable (String, PhaseProgress, String) async -> Void) async ->
            RollbackResult
    /// Checks smoke URLs; returns one line per failure.
    public var smoke: @Sendable ([String]) async -> [String]
    /// An incident's chart (SVG) was drawn anew; called before `incidentChanged` so the report can link it.
    public var incidentChart: @Sendable (Incident, _ svg: String) async -> Void
    /// An incident changed (write its report, refresh webhook summaries).
    public var incidentChanged: @Sendable (Incident) async -> Void
    /// Finish what was accepted (spool writes) before this world is replaced or the daemon exits.
    public var shutdown: @Sendable () async -> Void
    /// Each webhook's delivery state, for `/metrics`.
    public var webhookTelemetry: @Sendable () async -> [WebhookTelemetry]

    public init(
        sample: @escaping @Sendable (Timestamp) async -> SampledMetrics,
        readVersion: @escaping @Sendable () async -> (version: String?, reason: String?),
        deployable: @escaping @Sendable () async -> Set<String>?,
        notify: @escaping @Sendable (Event) async -> Void,
        executeRollback:
            @escaping @Sendable (
                RollbackOrder, _ phase: @escaping @Sendable (String, PhaseProgress, String) async -> Void
            ) async -> RollbackResult,
        smoke: @escaping @Sendable ([String]) async -> [String],
        incidentChart: @escaping @Sendable (Incident, _ svg: String) async -> Void = { _, _ in },
        incidentChanged: @escaping @Sendable (Incident) async -> Void = { _ in },
        shutdown: @escaping @Sendable () async -> Void = {},
        webhookTelemetry: @escaping @Sendable () async -> [WebhookTelemetry] = { [] }
    ) {
        self.sample = sample
        self.readVersion = readVersion
        self.deployable = deployable
        self.notify = notify
        self.executeRollback = executeRollback
        self.smoke = smoke
        self.incidentChart = incidentChart
        self.incidentChanged = incidentChanged
        self.shutdown = shutdown
        self.webhookTelemetry = webhookTelemetry
    }

    /// What a tick looks at.
    public var senses: Senses { Senses(sample: sample, readVersion: readVersion, deployable: deployable, smoke: smoke) }
}
