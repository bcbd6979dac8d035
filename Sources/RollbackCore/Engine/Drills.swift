/// How a rollback drill (`rollbackd drill`) ended.
public enum DrillOutcome: String, Sendable, Codable, CaseIterable {
    /// Rolled back, verification passed, rolled forward again.
    case verified
    /// Rolled back, verification failed (the configured rollback does not recover the target); rolled forward.
    case verificationFailed = "verification_failed"
    /// The rollback itself did not complete (a gate, the precheck or a phase failed).
    case rollbackFailed = "rollback_failed"
    /// Rollback and verification done, but rolling forward to the original release failed: a human must look.
    case rollForwardFailed = "roll_forward_failed"
}

/// One rehearsal of the configured rollback on a staging target, as recorded in `<state dir>/drills.json`.
public struct DrillRecord: Sendable, Equatable, Codable {
    public var id: String
    public var startedAt: Timestamp
    public var finishedAt: Timestamp
    /// The release live before the drill (rolled back from, then forward to).
    public var from: String
    /// The release rolled back to.
    public var to: String
    public var strategy: String
    public var outcome: DrillOutcome
    /// From the start of the rollback to the verification verdict; nil unless verified.
    public var recoverySeconds: Double?
    /// The rollback phases alone.
    public var rollbackSeconds: Double?
    /// True when the original release is live again.
    public var rolledForward: Bool
    public var detail: String

    public init(
        id: String, startedAt: Timestamp, finishedAt: Timestamp, from: String, to: String, strategy: String,
        outcome: DrillOutcome, recoverySeconds: Double?, rollbackSeconds: Double?, rolledForward: Bool,
        detail: String
    ) {
        self.id = id
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.from = from
        self.to = to
        self.strategy = strategy
        self.outcome = outcome
        self.recoverySeconds = recoverySeconds
        self.rollbackSeconds = rollbackSeconds
        self.rolledForward = rolledForward
        self.detail = detail
    }
}

/// "Rollback procedure tested" as a safety gate: the last successful drill must be recent. `rollbackd check` and
/// `rollbackd status` print the warning; nothing is blocked by it.
public enum DrillPolicy {
    /// Monthly drills: a successful drill older than this is stale.
    public static let maxAge = Interval.hours(24 * 30)

    /// The most recent drill that verified recovery and rolled forward.
    public static func lastSuccess(_ records: [DrillRecord]) -> DrillRecord? {
        records.filter { $0.outcome == .verified && $0.rolledForward }.max { $0.finishedAt < $1.finishedAt }
    }

    /// Nil when the last successful drill finished within `maxAge` of `now`; otherwise one sentence saying why not.
    public static func warning(_ records: [DrillRecord], now: Timestamp, maxAge: Interval = DrillPolicy.maxAge)
        -> String?
    {
        guard let last = lastSuccess(records) else {
            let failed = records.count
            return failed == 0
                ? "no rollback drill has been recorded; rehearse the rollback on staging with rollbackd drill (monthly)"
                : "no successful rollback drill among the \(failed) recorded; fix the rollback and run rollbackd drill again"
        }
        let age = now - last.finishedAt
        guard age > maxAge else { return nil }
        let days = age.milliseconds / 86_400_000
        return
            "the last successful rollback drill was \(days) days ago (\(last.finishedAt.iso8601), \(last.from) -> \(last.to)); "
            + "drills are due every \(maxAge.milliseconds / 86_400_000) days: run rollbackd drill"
    }
}
