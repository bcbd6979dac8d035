import Testing
@testable import RollbackCore
@testable import RollbackSystem
import TestSupport

/// A thresholds.json around the given `metrics` object (JSON text), loaded through the real config reader.
func samplingThresholds(metrics: String, instances: [String] = [], version: String? = nil) throws -> Thresholds {
    let inst = instances.isEmpty ? "" : "\"instances\": [" + instances.map { "\"\($0)\"" }.joined(separator: ",") + "],"
    let ver = version.map { "\"version\": \($0)," } ?? ""
    let firstMetric = try #require(try JSONParser.parse("{\(metrics)}").objectKeys.first)
    let text = """
        {"service": "sampling-test", "interval": "5s", \(inst) \(ver)
         "metrics": {\(metrics)},
         "triggers": [{"name": "t", "metric": "\(firstMetric)", "condition": {"above": 0.5}, "severity": "high",
                       "respondWithin": "5m", "automation": "manual"}],
         "rollback": {"strategy": "command", "command": {"argv": ["/bin/true"]}}}
        """
    return try Thresholds.load(text: text, file: "test.json").thresholds
}

extension JSONValue {
    var objectKeys: [String] {
        if case let .object(m) = self { return m.map(\.key) }
        return []
    }
}

/// Tells a metrics_app.py instance what to have served.
func post(_ url: String) async throws {
    let r = await HTTPClient.shared.send(HTTPRequest(method: "POST", url: url, options: patientHTTP()))
    guard case let .success(resp) = r, resp.status == 200 else {
        throw TestFailure("POST \(url) failed: \(r)")
    }
}

private func t(_ s: Int64) -> Timestamp { Timestamp(millisecondsSinceEpoch: 1_800_000_000_000 + s * 1000) }

private func value(_ s: SampleValue?) -> Double? { s?.number }

/// Application instances built on the real `prometheus_client` package, scraped by the real sources.
@Suite struct SamplingScrapeTests {
    /// Patient timeouts (one value for every scrape, so they still share a fetch): the values are tested, not how
    /// quickly a loaded runner answers.
    static let metrics = """
        "error_rate": {"type": "scrape", "path": "/metrics", "measure": "errorRatio", "counter": "http_requests_total",
                       "errorLabels": {"code": "5.."}, "window": "30s", "timeout": "60s"},
        "latency_p95": {"type": "scrape", "path": "/metrics", "measure": "quantile",
                        "histogram": "http_request_duration_seconds", "quantile": 0.95, "window": "30s", "timeout": "60s"},
        "latency_p50": {"type": "scrape", "path": "/metrics", "measure": "quantile",
                        "histogram": "http_request_duration_seconds", "quantile": 0.5, "window": "30s", "timeout": "60s"},
        "throughput": {"type": "scrape", "path": "/metrics", "measure": "rate", "counter": "http_requests_total", "window": "1m",
                       "timeout": "60s"},
        "inflight": {"type": "scrape", "path": "/metrics", "measure": "gauge", "gauge": "inflight_requests", "timeout": "60s"},
        "unhealthy": {"type": "probe", "path": "/healthz", "measure": "unhealthyRatio", "timeout": "60s",
                      "expect": {"jsonField": "status", "equals": "ok"}}
        """

    @Test func errorRateAndQuantilesMatchWhatTheInstancesServed() async throws {
        async let a0 = ServerProcess.python("metrics_app.py")
        async let a1 = ServerProcess.python("metrics_app.py")
        async let a2 = ServerProcess.python("metrics_app.py")
        let apps = try await [a0, a1, a2]
        let (a, b, c) = (apps[0].base, apps[1].base, apps[2].base)
        let sampler = Sampler(thresholds: try samplingThresholds(metrics: Self.metrics, instances: [a, b, c]))
        // The scrapes share one fetch per instance.
        #expect(sampler.sources.count == 2)

        // Nothing served yet: prometheus_client exports no series for a labelled counter before its first increment.
        let first = await sampler.tick(now: t(0))
        #expect(
            first.samples["error_rate"]?.reason?.hasPrefix(
                "3 of 3 targets lack the series: no http_requests_total samples in the exposition of \(a)/metrics; ")
                == true)
        #expect(first.samples["inflight"] == .value(0))
        #expect(first.samples["unhealthy"] == .value(0))

        try await post("\(a)/simulate?ok=90&errors=10&latency=0.07")
        try await post("\(b)/simulate?ok=100&errors=0&latency=0.3")
        try await post("\(c)/simulate?ok=50&errors=50&latency=0.7")
        try await post("\(c)/inflight?n=4")
        try await post("\(a)/inflight?n=3")
        let second = await sampler.tick(now: t(5))
        // 60 errors of 300 requests.
        #expect(value(second.samples["error_rate"]) == 0.2)
        // Buckets summed over instances: ≤0.1: 100, ≤0.5: 200, ≤1: 300 of 300.
        // P95: rank 285 in (0.5, 1]: 0.5 + 0.5 × 85/100. P50: rank 150 in (0.25, 0.5]: 0.25 + 0.25 × 50/100.
        #expect(abs((value(second.samples["latency_p95"]) ?? 0) - 0.925) < 1e-9)
        #expect(abs((value(second.samples["latency_p50"]) ?? 0) - 0.375) < 1e-9)
        #expect(value(second.samples["throughput"]) == 60) // 300 requests in 5 s
        #expect(second.samples["inflight"] == .value(7))
        #expect(second.notes.isEmpty)

        // A quiet tick does not zero the rate: the window still holds the errors.
        let quiet = await sampler.tick(now: t(10))
        #expect(value(quiet.samples["error_rate"]) == 0.2)

        // Instance c restarts (its counters start from zero) and serves 10 ok, 10 errors.
        try await post("\(c)/restart")
        try await post("\(c)/simulate?ok=10&errors=10&latency=0.7")
        let afterReset = await sampler.tick(now: t(15))
        // (60 + 10) errors of (300 + 20) requests: the reset is not a negative increase.
        #expect(abs((value(afterReset.samples["error_rate"]) ?? 0) - 70.0 / 320) < 1e-12)

        // Instance b goes away: its earlier requests stay in the window, the tick says it is missing, and the
        // probe sees one unhealthy instance of three.
        apps[1].stop()
        try await post("\(a)/simulate?ok=0&errors=30&latency=0.07")
        let vanished = await sampler.tick(now: t(20))
        #expect(abs((value(vanished.samples["error_rate"]) ?? 0) - 100.0 / 350) < 1e-12)
        #expect(value(vanished.samples["unhealthy"]).map { abs($0 - 1.0 / 3) < 1e-12 } == true)
        #expect(vanished.notes["error_rate"] == ["1 of 3 targets failed: connection refused to \(b)/metrics"])
        #expect(vanished.notes["unhealthy"] == ["1 of 3 targets unhealthy: connection refused to \(b)/healthz"])

        // A health check that answers 200 with the wrong body is unhealthy too.
        try await post("\(a)/health?status=200&body=%7B%22status%22%3A%22degraded%22%7D")
        let degraded = await sampler.tick(now: t(25))
        #expect(value(degraded.samples["unhealthy"]).map { abs($0 - 2.0 / 3) < 1e-12 } == true)
        #expect(
            degraded.notes["unhealthy"]?.first?.contains("\(a)/healthz: status is \"degraded\", expected \"ok\"")
                == true)
    }

    @Test func withoutTrafficTheErrorRateIsNoDataNotZero() async throws {
        let app = try await ServerProcess.python("metrics_app.py")
        try await post("\(app.base)/simulate?ok=5")
        let sampler = Sampler(thresholds: try samplingThresholds(metrics: Self.metrics, instances: [app.base]))
        _ = await sampler.tick(now: t(0))
        let tick = await sampler.tick(now: t(5))
        #expect(
            tick.samples["error_rate"]
                == .noData(reason: "no increase of http_requests_total in the last 30s on any target (no traffic?)"))
        #expect(
            tick.samples["latency_p95"]
                == .noData(
                    reason:
                        "no observations of http_request_duration_seconds in the last 30s on any target (no traffic?)"))
        #expect(tick.samples["throughput"] == .value(0))
    }

    @Test func aMisnamedCounterSaysWhatTheExpositionHas() async throws {
        let app = try await ServerProcess.python("metrics_app.py")
        try await post("\(app.base)/simulate?ok=5")
        let sampler = Sampler(
            thresholds: try samplingThresholds(
                metrics: """
                    "rps": {"type": "scrape", "targets": ["\(app.base)/metrics"], "measure": "rate", "counter": "http_requests", "timeout": "60s"}
                    """))
        let tick = await sampler.tick(now: t(0))
        #expect(
            tick.samples["rps"]
                == .noData(
                    reason:
                        "no http_requests samples (the exposition has http_requests_total: set \"counter\": \"http_requests_total\") of \(app.base)/metrics"
                ))
    }
}
