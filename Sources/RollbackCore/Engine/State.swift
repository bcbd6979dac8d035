/// Where a trigger stands. `ok → pending (k of K) → firing → recovering (r of R) → ok`.
public enum TriggerPhase: String, Sendable, Codable, CaseIterable {
    case ok, pending, firing, recovering

    /// Firing or recovering: the trigger has tripped and not yet cleared.
    public var isTripped: Bool { self == .firing || self == .recovering }
}

public struct TriggerState: Sendable, Equatable, Codable {
    public var phase: TriggerPhase = .ok
    /// Consecutive breaches (pending) or consecutive oks (recovering).
    public var count: Int = 0
    public var firstBreachAt: Timestamp?
    public var trippedAt: Timestamp?
    public var lastValue: Double?
    public var lastThreshold: Double?
    /// Why the last sample was not evaluated (no-data reason, missing baseline).
    public var lastReason: String?
    /// On a counted metric: the sequential test that the live release is beyond the condition, fed since
    /// `evidenceRelease` went live (or since the trigger began watching it).
    public var evidence: EvidenceTest?
    /// After a trip on a counted metric: the mirror test that the value is back within the condition.
    public var clearing: EvidenceTest?
    public var evidenceSince: Timestamp?
    public var clearingSince: Timestamp?
    /// The release whose counts `evidence` and `clearing` hold; another release starts them afresh.
    public var evidenceRelease: String?
    /// For a quantile bound: the bucket boundary the slow requests were counted above.
    public var evidenceBoundary: Double?
    /// "Insufficient evidence" has been said for this release (it is said once).
    public var insufficientSaid: Bool?
    public init() {}
}

/// One release the watchdog has seen live.
public struct Release: Sendable, Equatable, Codable {
    public var version: String
    public var firstSeenAt: Timestamp
    /// When it last became the live release.
    public var liveSince: Timestamp
    /// Start of the current stretch as live release with no tripped trigger and eyes open.
    public var cleanSince: Timestamp?
    public var knownGoodAt: Timestamp?
    /// Set when rollbackd rolled back away from it: it is never a target again.
    public var rolledBackFromAt: Timestamp?
    /// Per-metric baseline (median of the previous release's recent samples), for ratio triggers.
    public var baseline: [String: Double]
    /// Per counted metric: the previous release's counts over its last `baselineWindow`, for relative conditions
    /// decided by evidence.
    public var baselineCounts: [String: Counts]?
    /// Per latency quantile metric: the previous release's observations by latency over its last
    /// `baselineWindow` (cumulative buckets), for relative bounds on the quantile decided by evidence.
    public var baselineHistograms: [String: [HistogramBucket]]?

    public var isKnownGood: Bool { knownGoodAt != nil }
}

public struct ReleaseLedger: Sendable, Equatable, Codable {
    /// In the order first seen.
    public var releases: [Release] = []
    public var current: String?
    public init() {}

    public func release(_ version: String) -> Release? { releases.first { $0.version == version } }

    mutating func update(_ version: String, _ change: (inout Release) -> Void) {
        if let i = releases.firstIndex(where: { $0.version == version }) { change(&releases[i]) }
    }

    /// The most recently live known-good release that is not `current` and was never rolled back from,
    /// restricted to `deployable` when the strategy can list what it can deploy.
    public func target(excluding current: String?, deployable: Set<String>?) -> Release? {
        releases
            .filter { $0.version != current && $0.isKnownGood && $0.rolledBackFromAt == nil }
            .filter { deployable?.contains($0.version) ?? true }
            .max { $0.liveSince < $1.liveSince }
    }
}

/// A rollback that has been ordered and not yet reported finished.
public struct RollbackOrder: Sendable, Equatable, Codable {
    public var incident: String
    public var from: String
    public var to: String
    /// The trigger that caused it (nil for a manual rollback).
    public var trigger: String?
    /// True when rollbackd decided on its own (counts against the budget).
    public var automatic: Bool
    /// Who asked or approved, for manual and approved rollbacks (e.g. `uid 0`).
    public var requestedBy: String?
    public var orderedAt: Timestamp
    /// Fleet mode: a host carries out a fleet decision that stands after the fleet's rollback finished (it was away
    /// and returned on the release rolled back from). The leader decided and gated it; the host only converges.
    public var standing: Bool?
    /// The step of a plan a person approved (`rollbackd approve` of a plan stopped before it).
    public var approvedStep: Int? = nil

    public init(
        incident: String, from: String, to: String, trigger: String? = nil, automatic: Bool,
        requestedBy: String? = nil, orderedAt: Timestamp, approvedStep: Int? = nil
    ) {
        self.approvedStep = approvedStep
        self.incident = incident
        self.from = from
        self.to = to
        self.trigger = trigger
        self.automatic = automatic
        self.requestedBy = requestedBy
        self.orderedAt = orderedAt
    }
}

public struct PendingApproval: Sendable, Equatable, Codable {
    /// The incident id; `rollbackd approve <id>` names it.
    public var incident: String
    public var trigger: String
    public var from: String
    public var to: String
    public var requestedAt: Timestamp
    /// A plan stopped before this step (1-based, `approval: true`); nil for a rollback not yet started.
    public var planStep: Int? = nil
}

public struct VerificationState: Sendable, Equatable, Codable {
    public var incident: String
    public var from: String
    public var to: String
    public var startedAt: Timestamp
    public var deadline: Timestamp
    public var smokeFailures: [String]
    /// Ticks observed since the rollback finished (nil in state saved before it was counted: treated as enough).
    public var ticks: Int?
}

public struct HaltState: Sendable, Equatable, Codable {
    public var at: Timestamp
    public var reason: String
    public var incident: String?
}

public struct BlindState: Sendable, Equatable, Codable {
    public var consecutiveNoData: Int = 0
    public var blindSince: Timestamp?
    public var lastReason: String?
}

public struct TimedValue: Sendable, Equatable, Codable {
    public var at: Timestamp
    public var value: Double
}

public struct TimedCounts: Sendable, Equatable, Codable {
    public var at: Timestamp
    public var counts: Counts
}

/// Cumulative bucket counts summed over the ticks of a slot beginning at `at`.
public struct TimedBuckets: Sendable, Equatable, Codable {
    public var at: Timestamp
    public var buckets: [HistogramBucket]
}

/// Everything the engine remembers; Codable so the daemon can persist it (temp + fsync + rename).
public struct EngineState: Sendable, Equatable, Codable {
    public var triggers: [String: TriggerState] = [:]
    public var ledger = ReleaseLedger()
    /// Open incidents and the most recent closed ones.
    public var incidents: [Incident] = []
    /// Start times of rollbacks, for cooldown (all) and budget (automatic only).
    public var rollbackLog: [RollbackOrder] = []
    public var activeRollback: RollbackOrder?
    public var verification: VerificationState?
    public var approvals: [PendingApproval] = []
    public var halted: HaltState?
    /// Maintenance window: every trigger is capped at `manual` until then.
    public var pausedUntil: Timestamp?
    public var pausedBy: String?
    public var blind: [String: BlindState] = [:]
    /// Recent ok samples of the current release, per metric (for the next release's baseline).
    public var recent: [String: [TimedValue]] = [:]
    /// The current release's counts per tick over `baselineWindow`, per counted metric (the next release's
    /// baseline counts).
    public var recentCounts: [String: [TimedCounts]]?
    /// The current release's observations by latency over `baselineWindow`, per quantile metric, summed into
    /// slots of a twentieth of the window (the next release's baseline histograms).
    public var recentHistograms: [String: [TimedBuckets]]?
    /// Per incident and trigger, the last decision reported (so a standing decision is not repeated every tick).
    public var lastDecisions: [String: String] = [:]
    public init() {}

    /// The state without what changes on every tick without deciding anything: sample histories, and per trigger
    /// its last value, reason, consecutive count and evidence. A change here must reach disk at once; the rest may
    /// wait a few seconds (a crash then loses some evidence, which only delays a decision: it never makes one).
    public var decisions: EngineState {
        var s = self
        s.recent = [:]
        s.recentCounts = nil
        s.recentHistograms = nil
        s.triggers = triggers.mapValues { t in
            var d = TriggerState()
            d.phase = t.phase
            d.firstBreachAt = t.firstBreachAt
            d.trippedAt = t.trippedAt
            d.evidenceRelease = t.evidenceRelease
            d.insufficientSaid = t.insufficientSaid
            return d
        }
        s.blind = blind.mapValues { b in
            var d = b
            d.consecutiveNoData = 0
            d.lastReason = nil
            return d
        }
        return s
    }

    public var openIncidents: [Incident] { incidents.filter { $0.status != .closed } }
    public func incident(_ id: String) -> Incident? { incidents.first { $0.id == id } }
}
