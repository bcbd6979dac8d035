/// One line of an incident's timeline.
public struct TimelineEntry: Sendable, Equatable, Codable {
    public var at: Timestamp
    public var kind: EventKind
    public var text: String
    public init(at: Timestamp, kind: EventKind, text: String) {
        self.at = at
        self.kind = kind
        self.text = text
    }
}

/// A trigger's state at the moment it tripped.
public struct TripSnapshot: Sendable, Equatable, Codable {
    public var trigger: String
    public var metric: String
    public var severity: Severity
    public var automation: AutomationLevel
    public var value: Double?
    public var threshold: Double?
    public var firstBreachAt: Timestamp
    public var trippedAt: Timestamp
    /// On a counted metric: the counts and strength of evidence it tripped on.
    public var evidence: String?
}

public enum IncidentStatus: String, Sendable, Codable, CaseIterable {
    case open
    case awaitingApproval = "awaiting_approval"
    case rollingBack = "rolling_back"
    case verifying
    case closed
}

public enum IncidentOutcome: String, Sendable, Codable, CaseIterable {
    /// Rolled back and verification passed.
    case rolledBack = "rolled_back"
    case rollbackFailed = "rollback_failed"
    case verificationFailed = "verification_failed"
    /// Every trigger cleared without a rollback.
    case recovered
    /// A human denied the proposed rollback.
    case denied
    /// Superseded: another release went live while the incident was open.
    case superseded
}

/// Everything that happened about one bad release: one incident per release.
public struct Incident: Sendable, Equatable, Codable {
    public var id: String
    public var service: String
    /// The release the incident is about (the one that went bad).
    public var fromVersion: String
    /// The rollback target, once one was chosen.
    public var toVersion: String?
    public var openedAt: Timestamp
    public var closedAt: Timestamp?
    public var status: IncidentStatus
    public var outcome: IncidentOutcome?
    /// Every trip during the incident, in order.
    public var trips: [TripSnapshot]
    /// The gates of the latest decision.
    public var gates: [GateResult]
    /// `notify`, `await_approval`, `rollback`, `blocked`.
    public var decision: String?
    public var decisionReason: String?
    /// Who approved or denied (e.g. `uid 1000`), where someone did.
    public var approver: String?
    public var rollbackStartedAt: Timestamp?
    public var rollbackFinishedAt: Timestamp?
    public var verifiedAt: Timestamp?
    public var timeline: [TimelineEntry]

    public var duration: Interval? { closedAt.map { $0 - openedAt } }
}
