@testable import RollbackCore

/// Builds small thresholds files for engine tests (through the real loader) and drives an engine with a fake clock.
struct TableSpec {
    var cap = "full"
    var interval = "1s"
    var triggers: [String] = [TableSpec.trigger()]
    var safety =
        #"{"cooldown": "10m", "budget": {"max": 2, "window": "1h"}, "deployWindow": "1h", "soak": "10s", "verifyFor": "5s", "baselineWindow": "1m", "blindAfter": 3}"#

    static func trigger(
        name: String = "errors", metric: String = "error_rate", condition: String = #"{"above": 0.1}"#,
        breaches: Int = 3, clears: Int = 2, noData: String = "hold", severity: String = "critical",
        automation: String = "full", dryRun: Bool = false
    ) -> String {
        #"{"name": "\#(name)", "metric": "\#(metric)", "condition": \#(condition), "breaches": \#(breaches), "clears": \#(clears), "noData": "\#(noData)", "severity": "\#(severity)", "respondWithin": "2m", "automation": "\#(automation)", "dryRun": \#(dryRun)}"#
    }

    var json: String {
        """
        {
          "service": "svc", "interval": "\(interval)", "automation": "\(cap)",
          "metrics": {
            "error_rate": {"type": "scrape", "targets": ["http://127.0.0.1:1/metrics"], "measure": "errorRatio", "counter": "http_requests_total", "errorLabels": {"code": "5.."}},
            "latency": {"type": "scrape", "targets": ["http://127.0.0.1:1/metrics"], "measure": "quantile", "histogram": "h"},
            "security": {"type": "command", "argv": ["/bin/true"], "value": "exitStatus"}
          },
          "triggers": [\(triggers.joined(separator: ",\n"))],
          "rollback": {"strategy": "command", "command": {"argv": ["/bin/true"]}},
          "safety": \(safety)
        }
        """
    }

    func thresholds() throws -> Thresholds {
        try Thresholds.load(text: json, file: "test.json").thresholds
    }
}

/// A fake clock and an engine, with helpers that read like a timeline.
struct Harness {
    var engine: Engine
    var now = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)
    var version = "v1"
    var events: [Event] = []
    var orders: [RollbackOrder] = []
    var deployable: Set<String>?
    /// Samples for the other metrics, merged into every tick that does not give them.
    var background: [String: SampleValue] = ["latency": .value(0.1), "security": .value(0)]

    init(_ spec: TableSpec = TableSpec()) throws {
        engine = Engine(config: try spec.thresholds())
    }

    var state: EngineState { engine.state }
    var step: Interval { engine.config.interval }

    /// One tick with the given samples; the clock then advances one interval.
    @discardableResult
    mutating func tick(
        _ samples: [String: SampleValue], counts: [String: Counts] = [:], histograms: [String: [HistogramBucket]] = [:],
        version: String? = nil, smoke: [String] = []
    ) -> EngineOutput {
        if let version { self.version = version }
        let all = background.merging(samples) { _, new in new }
        let out = engine.tick(
            Observation(
                at: now, samples: all, counts: counts, histograms: histograms, version: self.version,
                smokeFailures: smoke),
            deployable: deployable)
        events += out.events
        if let o = out.rollback { orders.append(o) }
        now = now + step
        return out
    }

    /// One tick of `errors` failed requests out of `requests` on the counted error-rate metric.
    @discardableResult
    mutating func tick(errors: Int64, of requests: Int64) -> EngineOutput {
        tick(
            ["error_rate": .value(requests > 0 ? Double(errors) / Double(requests) : 0)],
            counts: ["error_rate": Counts(events: errors, trials: requests)])
    }

    @discardableResult
    mutating func tick(errors: Double?, count: Int = 1) -> [EngineOutput] {
        (0..<count).map { _ in tick(["error_rate": errors.map { .value($0) } ?? .noData(reason: "connection refused")])
        }
    }

    /// Runs v1 clean until it is known-good (soak), then makes `bad` live.
    mutating func knownGoodThenDeploy(_ bad: String = "v2") {
        tick(errors: 0.01, count: Int(engine.config.safety.soak.milliseconds / step.milliseconds) + 2)
        precondition(engine.state.ledger.release("v1")?.isKnownGood == true, "v1 did not become known-good")
        version = bad
    }

    /// The executor reports success, then the watchdog sees the target live and healthy through verification.
    mutating func finishRollback(_ result: RollbackResult = .succeeded, healthyTicks: Int = 8) {
        events += engine.rollbackFinished(result, now: now)
        if result == .succeeded, let o = orders.last { version = o.to }
        if healthyTicks > 0 { tick(errors: 0.0, count: healthyTicks) }
    }

    func kinds() -> [EventKind] { events.map(\.kind) }
    func decisions() -> [String] { events.filter { $0.kind == .decision }.compactMap(\.decision) }
    func count(_ kind: EventKind) -> Int { events.filter { $0.kind == kind }.count }
}
