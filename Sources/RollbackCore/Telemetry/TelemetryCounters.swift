import RollbackVersion

/// What rollbackd is, for `rollbackd_build_info`.
public enum BuildInfo {
    /// The one version (`RollbackVersion.current`, stamped at build time by the VersionStamp plugin).
    public static var version: String { RollbackVersion.current }

    /// The Swift language version the binary was compiled with (the compiler's own, to the patch level it tells).
    public static var swiftVersion: String {
        #if swift(>=6.4)
        "6.4"
        #elseif swift(>=6.3.2)
        "6.3.2"
        #elseif swift(>=6.3.1)
        "6.3.1"
        #elseif swift(>=6.3)
        "6.3"
        #elseif swift(>=6.2)
        "6.2"
        #elseif swift(>=6.1)
        "6.1"
        #else
        "6.0"
        #endif
    }
}

/// A cumulative histogram with fixed upper bounds, as Prometheus exposes it.
public struct Histogram: Sendable, Equatable {
    public let bounds: [Double]
    /// Observations ≤ each bound (not cumulative here; the exposition sums them).
    public private(set) var counts: [Int]
    public private(set) var sum: Double = 0
    public private(set) var count: Int = 0

    /// Seconds, from 1 ms to 30 s: a tick, a sample.
    public static let durationBounds: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

    public init(bounds: [Double] = Histogram.durationBounds) {
        self.bounds = bounds
        self.counts = Array(repeating: 0, count: bounds.count)
    }

    public mutating func observe(_ value: Double) {
        guard value.isFinite else { return }
        if let i = bounds.firstIndex(where: { value <= $0 }) { counts[i] += 1 }
        sum += value
        count += 1
    }

    /// Cumulative counts per bound, then +Inf.
    public var cumulative: [Int] {
        var running = 0
        return counts.map {
            running += $0; return running
        } + [count]
    }
}

/// The counters and histograms the daemon keeps while it runs. Like every Prometheus counter they start at zero
/// when the process starts; the gauges come from the engine's state (`TelemetrySnapshot`).
public struct TelemetryCounters: Sendable, Equatable {
    public var events: [EventKind: Int] = [:]
    /// `decision` events by their outcome (`none`, `notify`, `await_approval`, `rollback`, `blocked`).
    public var decisions: [String: Int] = [:]
    /// `gate_blocked` events by the gate that blocked.
    public var gatesBlocked: [String: Int] = [:]
    public var tickDuration = Histogram()
    public var sampleDuration: [String: Histogram] = [:]
    /// Per metric: when its last sample with a value was taken.
    public var lastValueAt: [String: Timestamp] = [:]
    public var lastTickAt: Timestamp?

    public init() {}

    public mutating func record(_ event: Event) {
        events[event.kind, default: 0] += 1
        switch event.kind {
        case .decision: decisions[event.decision ?? "none", default: 0] += 1
        case .gateBlocked: gatesBlocked[event.extra["gate"] ?? "unknown", default: 0] += 1
        default: break
        }
    }

    /// One tick: what it saw, how long it took, and how long each metric's source took.
    public mutating func recordTick(
        at now: Timestamp, samples: [String: SampleValue], seconds: Double, sampleSeconds: [String: Double]
    ) {
        lastTickAt = now
        tickDuration.observe(seconds)
        for (name, value) in samples {
            if case .value = value { lastValueAt[name] = now }
        }
        for (name, s) in sampleSeconds { sampleDuration[name, default: Histogram()].observe(s) }
    }

    public func count(_ kind: EventKind) -> Int { events[kind] ?? 0 }
}

/// One webhook's delivery, as the exporter shows it.
public struct WebhookTelemetry: Sendable, Equatable {
    public var name: String
    public var pending: Int
    public var oldestPendingAt: Timestamp?
    public var delivered: Int
    public var dropped: Int
    public var failedAttempts: Int

    public init(
        name: String, pending: Int, oldestPendingAt: Timestamp?, delivered: Int, dropped: Int, failedAttempts: Int
    ) {
        self.name = name
        self.pending = pending
        self.oldestPendingAt = oldestPendingAt
        self.delivered = delivered
        self.dropped = dropped
        self.failedAttempts = failedAttempts
    }
}

/// Everything `/metrics` shows, copied from the daemon after each tick and command: the exporter renders from
/// this and never waits on the daemon.
public struct TelemetrySnapshot: Sendable {
    public var config: Thresholds
    public var state: EngineState
    public var samples: [String: SampleValue]
    public var counters: TelemetryCounters
    public var webhooks: [WebhookTelemetry]
    public var startedAt: Timestamp
    /// Fleet mode: this host's role (nil without a fleet).
    public var fleet: FleetStanding?

    public init(
        config: Thresholds, state: EngineState, samples: [String: SampleValue], counters: TelemetryCounters,
        webhooks: [WebhookTelemetry], startedAt: Timestamp, fleet: FleetStanding? = nil
    ) {
        self.config = config
        self.state = state
        self.samples = samples
        self.counters = counters
        self.webhooks = webhooks
        self.startedAt = startedAt
        self.fleet = fleet
    }
}
