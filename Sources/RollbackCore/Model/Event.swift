/// Every kind of event rollbackd reports. The raw value is the stable name used in `ROLLBACKD_EVENT`, webhook
/// `type`s (`rollbackd.<name>`) and `notify.webhooks[].events`.
public enum EventKind: String, Sendable, CaseIterable, Codable {
    case triggerPending = "trigger_pending"
    case triggerFiring = "trigger_firing"
    case triggerRecovering = "trigger_recovering"
    case triggerCleared = "trigger_cleared"
    case decision
    case gateBlocked = "gate_blocked"
    case approvalRequested = "approval_requested"
    case approvalGiven = "approval_given"
    case approvalDenied = "approval_denied"
    case approvalWithdrawn = "approval_withdrawn"
    case rollbackStarted = "rollback_started"
    case rollbackPhase = "rollback_phase"
    case rollbackFinished = "rollback_finished"
    case rollbackFailed = "rollback_failed"
    case verificationPassed = "verification_passed"
    case verificationFailed = "verification_failed"
    case automationHalted = "automation_halted"
    case automationRearmed = "automation_rearmed"
    case automationPaused = "automation_paused"
    case automationResumed = "automation_resumed"
    case sourceBlind = "source_blind"
    case sourceRecovered = "source_recovered"
    case releaseDeployed = "release_deployed"
    case releaseKnownGood = "release_known_good"
    case incidentOpened = "incident_opened"
    case incidentClosed = "incident_closed"
    case configLoaded = "config_loaded"
    case configRejected = "config_rejected"
    case tickOverrun = "tick_overrun"
    case deliveryFailed = "delivery_failed"
    /// The privileged executor accepted or refused a request (`ROLLBACKD_DECISION` execute/refuse, the caller's uid).
    case executorRequest = "executor_request"
    /// A rollback phase as the privileged executor ran it: the record of what was really done, written by the
    /// process that did it (the daemon's `rollback_phase` entries relay the same reports).
    case executorPhase = "executor_phase"
    /// Fleet mode: this host became the fleet's leader (it decides for every host) or stopped being it.
    case fleetLeaderElected = "fleet_leader_elected"
    case fleetLeaderLost = "fleet_leader_lost"
    /// Fleet mode, seen by the leader: a host's lease appeared or expired.
    case fleetHostJoined = "fleet_host_joined"
    case fleetHostLeft = "fleet_host_left"
    /// Fleet mode: this host cannot reach etcd (it keeps sampling and never rolls back alone), or reaches it again.
    case fleetPartitioned = "fleet_partitioned"
    case fleetRejoined = "fleet_rejoined"
}

/// One thing that happened, with a sentence for humans and structured fields for machines.
/// Later layers turn it into a journald entry (`ROLLBACKD_*` fields) and webhook payloads.
public struct Event: Sendable, Equatable, Codable {
    public var kind: EventKind
    public var at: Timestamp
    /// A sentence a human reads in `journalctl`.
    public var message: String
    /// Drives journald PRIORITY and webhook minimum-severity filters.
    public var severity: Severity
    public var incident: String?
    public var trigger: String?
    public var automation: AutomationLevel?
    public var metric: String?
    public var value: Double?
    public var threshold: Double?
    public var fromVersion: String?
    public var toVersion: String?
    /// `none`, `notify`, `await_approval`, `rollback`, `blocked`.
    public var decision: String?
    public var reason: String?
    public var dryRun: Bool?
    /// Free-form extras (phase name, caller uid, …) that do not deserve a field of their own.
    public var extra: [String: String]

    public init(
        kind: EventKind, at: Timestamp, message: String, severity: Severity = .low, incident: String? = nil,
        trigger: String? = nil, automation: AutomationLevel? = nil, metric: String? = nil, value: Double? = nil,
        threshold: Double? = nil, fromVersion: String? = nil, toVersion: String? = nil,
        decision: String? = nil, reason: String? = nil, dryRun: Bool? = nil, extra: [String: String] = [:]
    ) {
        self.kind = kind
        self.at = at
        self.message = message
        self.severity = severity
        self.incident = incident
        self.trigger = trigger
        self.automation = automation
        self.metric = metric
        self.value = value
        self.threshold = threshold
        self.fromVersion = fromVersion
        self.toVersion = toVersion
        self.decision = decision
        self.reason = reason
        self.dryRun = dryRun
        self.extra = extra
    }
}
