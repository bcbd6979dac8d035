/// The records fleet mode keeps in etcd, as JSON. Keys live under `/rollbackd/fleets/<fleet>/` (``FleetKeys``).

/// One tick's counts of one host: what that tick added, numbered so that the leader adds each tick exactly once
/// however its own ticks fall against the host's.
public struct HostTick: Sendable, Equatable, Codable {
    public var seq: Int64
    public var at: Timestamp
    public var counts: [String: Counts]
    public var histograms: [String: [HistogramBucket]]

    public init(seq: Int64, at: Timestamp, counts: [String: Counts], histograms: [String: [HistogramBucket]]) {
        self.seq = seq
        self.at = at
        self.counts = counts
        self.histograms = histograms
    }
}

/// What a host publishes every tick (`hosts/<host>`, bound to its lease: it vanishes when the host stops).
public struct HostReport: Sendable, Equatable, Codable {
    public var host: String
    /// Changes when the daemon restarts, so that its tick numbers may start again.
    public var epoch: String
    public var at: Timestamp
    public var version: String?
    public var versionReason: String?
    /// The latest value of every metric on this host.
    public var samples: [String: SampleValue]
    /// The most recent ticks' counts (at most ``HostReport/keptTicks``), oldest first.
    public var ticks: [HostTick]
    /// Releases this host's strategy can deploy (nil: it cannot tell).
    public var deployable: [String]?
    /// During verification: this host's smoke checks that failed this tick.
    public var smokeFailures: [String]
    /// The incident whose rollback this host is carrying out, if any.
    public var running: String?

    /// Ticks a report carries: the leader reading less often than a host ticks (a slow leader tick) loses no
    /// counts unless it misses this many of the host's ticks in a row.
    public static let keptTicks = 8

    public init(
        host: String, epoch: String, at: Timestamp, version: String?, versionReason: String? = nil,
        samples: [String: SampleValue], ticks: [HostTick], deployable: [String]? = nil, smokeFailures: [String] = [],
        running: String? = nil
    ) {
        self.host = host
        self.epoch = epoch
        self.at = at
        self.version = version
        self.versionReason = versionReason
        self.samples = samples
        self.ticks = ticks
        self.deployable = deployable
        self.smokeFailures = smokeFailures
        self.running = running
    }

    /// The newest tick number (0 before the first).
    public var seq: Int64 { ticks.last?.seq ?? 0 }
}

/// The fleet's decision to roll back (`control/decision`), written by the leader together with the fleet state in a
/// transaction that also checks it still holds the leader key. It stands after the rollback: a host that returns on
/// `order.from` applies it then.
public struct FleetDecision: Sendable, Equatable, Codable {
    public var order: RollbackOrder
    /// The leader that decided, and its fencing token (the leader key's creation revision).
    public var leader: String
    public var token: Int64
    /// The live hosts on `order.from` when it was decided: the rollback is finished when each has reported (or left
    /// the fleet).
    public var participants: [String]

    public init(order: RollbackOrder, leader: String, token: Int64, participants: [String]) {
        self.order = order
        self.leader = leader
        self.token = token
        self.participants = participants
    }
}

/// How one host's part of a fleet rollback went (`runs/<incident>/<host>`, not leased: it outlives the host).
public struct HostRun: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable {
        case running, succeeded, failed, refused, interrupted

        public var isFinal: Bool { self == .succeeded || self == .failed || self == .refused }
    }

    public var host: String
    public var incident: String
    public var state: State
    /// The last phase reported (`<phase>` or `<step>.<phase>`).
    public var phase: String?
    public var detail: String
    public var at: Timestamp

    public init(host: String, incident: String, state: State, phase: String? = nil, detail: String, at: Timestamp) {
        self.host = host
        self.incident = incident
        self.state = state
        self.phase = phase
        self.detail = detail
        self.at = at
    }
}

/// Where the fleet's records live in etcd.
public struct FleetKeys: Sendable, Equatable {
    public var root: String

    public init(fleet: String) { root = "/rollbackd/fleets/\(fleet)/" }

    /// Every host's report (a prefix).
    public var hosts: String { root + "hosts/" }
    public func host(_ name: String) -> String { hosts + name }
    /// The small records every host reads every tick: the leader key and the standing decision (a prefix).
    public var control: String { root + "control/" }
    public var leader: String { control + "leader" }
    public var decision: String { control + "decision" }
    /// The fleet's engine state (ledger, incidents, budget, cooldown, halt, evidence).
    public var state: String { root + "state" }
    /// Each host's run of a decision (a prefix): one per order, so an incident decided again starts afresh.
    public func runs(_ order: RollbackOrder) -> String { root + "runs/\(order.attempt)/" }
    public func run(_ order: RollbackOrder, host: String) -> String { runs(order) + host }
}

extension RollbackOrder {
    /// This order among the orders of its incident (an incident may be decided again): `INC-…@<ms>`.
    public var attempt: String { "\(incident)@\(orderedAt.millisecondsSinceEpoch)" }
}

extension FleetDecision {
    /// The rollback's result once every participant has finished or left the fleet; nil while one still runs.
    /// - Parameters:
    ///   - runs: the participants' reports by host.
    ///   - live: the hosts that may still report: their lease is alive, and they still run `order.from` or are
    ///     carrying this order out (a host moved to another release by hand never reports, and counts as gone).
    public func result(runs: [String: HostRun], live: Set<String>) -> RollbackResult? {
        var succeeded: [String] = []
        var failed: [String] = []
        var refused: [String] = []
        var absent: [String] = []
        for host in participants.sorted() {
            if let r = runs[host], r.state.isFinal {
                switch r.state {
                case .succeeded: succeeded.append(host)
                case .failed: failed.append("\(host): \(r.detail)")
                default: refused.append("\(host): \(r.detail)")
                }
            } else if live.contains(host) {
                return nil
            } else {
                absent.append(host)
            }
        }
        let gone =
            absent.isEmpty
            ? ""
            : "; left the fleet before finishing (they apply it on their return): \(absent.joined(separator: ", "))"
        if !failed.isEmpty || (!refused.isEmpty && !succeeded.isEmpty) {
            let done = succeeded.isEmpty ? "" : "; rolled back: \(succeeded.joined(separator: ", "))"
            return .failed(
                "on \(failed.count + refused.count) of \(participants.count) hosts: \((failed + refused).joined(separator: "; "))\(done)\(gone)"
            )
        }
        if !refused.isEmpty {
            return .refused(GateResult(gate: "fleet", passed: false, detail: refused.joined(separator: "; ")))
        }
        guard !succeeded.isEmpty else {
            return .failed("no host carried the rollback out\(gone)")
        }
        return .succeeded
    }

    /// Whether a host on `live` should carry this decision out: it runs `order.from` (and its own record of the
    /// incident does not say it already finished it).
    public func applies(toLive live: String?, finished: Bool) -> Bool {
        !finished && live == order.from
    }
}
