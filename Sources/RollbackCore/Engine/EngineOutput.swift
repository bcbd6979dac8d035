/// What the engine decided for a tripped trigger.
public enum Decision: Sendable, Equatable, Codable {
    case none
    /// Tell people, with the recommended action; never execute (automation `manual`).
    case notify(recommendation: String)
    /// The plan passed its pre-checks; execute on `rollbackd approve` (automation `semi`).
    case awaitApproval(target: String)
    case rollback(target: String)
    /// A gate stopped the rollback; people are still told, with the reason.
    case blocked(gate: String, reason: String)

    /// The stable name used in `ROLLBACKD_DECISION`.
    public var name: String {
        switch self {
        case .none: return "none"
        case .notify: return "notify"
        case .awaitApproval: return "await_approval"
        case .rollback: return "rollback"
        case .blocked: return "blocked"
        }
    }
}

/// What a tick (or a command) produced: events to report and actions to carry out.
public struct EngineOutput: Sendable, Equatable {
    public var events: [Event] = []
    /// A rollback to execute now (at most one: only one rollback runs at a time).
    public var rollback: RollbackOrder?
    public init() {}
}

/// How the executor side reports a rollback's end.
public enum RollbackResult: Sendable, Equatable {
    case succeeded
    /// A phase failed; the message names the phase and what failed.
    case failed(String)
    /// A pre-execution gate (precheck, backup hook, lock) stopped it before anything changed.
    case refused(GateResult)
    /// The database gate: the target lacks migrations the current release has. Needs a human.
    case demotedToApproval(String)
    /// The daemon stopped (or lost the executor) mid-rollback. The order stays active: the phases are journaled,
    /// so the next start resumes it without running a completed phase again.
    case interrupted(String)
    /// A plan stopped before a step with `approval: true` (1-based `step`): the steps before it ran, the journal
    /// keeps the plan, and `rollbackd approve` runs the rest.
    case awaitingApproval(step: Int, String)
}

/// Where a rollback phase is, as the executor reports it (`ROLLBACKD_PHASE_STATE`).
public enum PhaseProgress: String, Sendable, Equatable, Codable, CaseIterable {
    case started, completed, skipped, failed
    /// Ended without failing: completed now, or skipped because it completed before an interruption.
    public var succeeded: Bool { self == .completed || self == .skipped }
}

/// Why a command to the engine was refused.
public struct EngineRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
