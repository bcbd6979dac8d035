import RollbackCore
import RollbackSystem

/// What the rollback procedure tells whoever runs it, step by step, in this order: `resuming` (instead of the
/// checks, backup and `starting`), or `checked` for each check, `backedUp`, `starting`; then `phase` for every phase
/// and `ended`. Each method does nothing by default: a reporter implements what it shows.
public protocol RollbackReporter: Sendable {
    /// An interrupted (or already finished) run of this very order is picked up; completed phases are skipped.
    func resuming(_ journal: ExecutionJournal) async
    /// A check before anything changes (`precheck`, `database`), passed or not.
    func checked(_ gate: GateResult) async
    /// The backup hook succeeded.
    func backedUp(_ backup: BackupHook.Result) async
    /// The plan is about to run from its first phase.
    func starting(_ plan: RollbackPlan) async
    /// A phase started, completed, was skipped or failed.
    func phase(_ report: PhaseReport) async
    /// The phases ended (not called when a check, the lock or the backup stopped the procedure first).
    func ended(_ outcome: ExecutionOutcome) async
}

extension RollbackReporter {
    public func resuming(_ journal: ExecutionJournal) async {}
    public func checked(_ gate: GateResult) async {}
    public func backedUp(_ backup: BackupHook.Result) async {}
    public func starting(_ plan: RollbackPlan) async {}
    public func phase(_ report: PhaseReport) async {}
    public func ended(_ outcome: ExecutionOutcome) async {}
}

/// Progress as the daemon's world hears it: one `(phase, progress, detail)` per step, the backup hook as a
/// completed `backup` step. Used by the in-process route and by the privileged executor (which relays it to the
/// watchdog over its socket).
public struct PhaseRelay: RollbackReporter {
    public typealias Hear = @Sendable (_ phase: String, _ progress: PhaseProgress, _ detail: String) async -> Void
    let hear: Hear

    public init(_ hear: @escaping Hear) { self.hear = hear }

    public func backedUp(_ backup: BackupHook.Result) async {
        await hear("backup", .completed, "\(backup.name) in \(ValueFormat.trim(backup.seconds))s")
    }

    public func phase(_ report: PhaseReport) async {
        await hear(report.phase.name, report.state, report.text)
    }
}
