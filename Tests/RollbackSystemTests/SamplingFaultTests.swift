import Testing
@testable import RollbackCore
@testable import RollbackSystem
import TestSupport

private func t(_ s: Int64) -> Timestamp { Timestamp(millisecondsSinceEpoch: 1_800_000_000_000 + s * 1000) }

/// Every fault a metrics target can show gives the right value or no-data with a clear reason — never a crash,
/// never a hang past the timeout. The targets are the real fault server (Tests/Servers/fault_server.py).
@Suite struct SamplingFaultTests {
    /// The error rate of `target`. Without a `timeout` a patient one: only the tests of timeouts name theirs (and
    /// keep a 500 ms connect timeout); on a loaded runner a good answer can take seconds.
    func errorRate(_ target: String, timeout: String? = nil) throws -> Sampler {
        Sampler(
            thresholds: try samplingThresholds(
                metrics: """
                    "error_rate": {"type": "scrape", "targets": ["\(target)"], "measure": "errorRatio",
                                   "counter": "http_requests_total", "errorLabels": {"code": "5.."}, "timeout": "\(timeout ?? "60s")",
                                   "connectTimeout": "\(timeout == nil ? "60s" : "500ms")"}
                    """))
    }

    func exposition(ok: Int, errors: Int) -> String {
        """
        # TYPE http_requests_total counter
        http_requests_total{code="200"} \(ok)
        http_requests_total{code="500"} \(errors)

        """
    }

    /// Samples once and returns the error_rate sample and the wall time in ms.
    func once(_ sampler: Sampler, at s: Int64 = 0) async -> (SampleValue?, Int64) {
        let started = monotonicMs()
        let tick = await sampler.tick(now: t(s))
        return (tick.samples["error_rate"], monotonicMs() - started)
    }

    @Test func refusedConnection() async throws {
        let url = "http://127.0.0.1:\(unusedPort())/metrics"
        let (s, _) = await once(try errorRate(url))
        #expect(s == .noData(reason: "connection refused to \(url)"))
    }

    @Test func aServerThatNeverAnswers() async throws {
        let f = try await SharedServers.fault()
        let (s, ms) = await once(try errorRate("\(f.base)/hang", timeout: "700ms"))
        // Its only target said nothing: that is the watchdog's view gone dark as much as the service hanging.
        #expect(s == .noData(reason: "blind: no target answered within 700ms: timeout after 700ms for \(f.base)/hang"))
        #expect(ms < 10_000, "took \(ms) ms: cut off at the timeout, not waited out")
    }

    @Test func aServerThatDripsBytes() async throws {
        let f = try await SharedServers.fault()
        let (s, ms) = await once(try errorRate("\(f.base)/drip?bytes=100000&ms=20", timeout: "700ms"))
        #expect(
            s?.reason?.hasPrefix("timeout after 700ms for \(f.base)/drip?bytes=100000&ms=20") == true,
            "\(String(describing: s))")
        #expect(ms < 10_000, "took \(ms) ms: cut off at the timeout, not waited out")
    }

    @Test func serverErrors() async throws {
        let f = try await SharedServers.fault()
        try await putDoc(f, "fault-500", "oops\n", status: 500)
        let (s, _) = await once(try errorRate("\(f.base)/doc/fault-500"))
        #expect(s == .noData(reason: "HTTP 500 from \(f.base)/doc/fault-500"))
    }

    @Test func garbage() async throws {
        let f = try await SharedServers.fault()
        let (s, _) = await once(try errorRate("\(f.base)/garbage"))
        #expect(
            s?.reason?.hasPrefix("invalid HTTP response from \(f.base)/garbage") == true, "\(String(describing: s))")
        // A 200 whose body is not an exposition.
        try await putDoc(f, "fault-html", "<html><body>Login</body></html>\n")
        let (s2, _) = await once(try errorRate("\(f.base)/doc/fault-html"))
        #expect(
            s2
                == .noData(
                    reason:
                        "\(f.base)/doc/fault-html: line 1: malformed sample: expected a metric name, found \"<html><body>Login</body>…\""
                ))
    }

    @Test func aFiftyMegabyteBody() async throws {
        let f = try await SharedServers.fault()
        let (s, ms) = await once(try errorRate("\(f.base)/big-chunked?bytes=\(50 << 20)", timeout: "10s"))
        #expect(
            s == .noData(reason: "response from \(f.base)/big-chunked?bytes=52428800 exceeds 16 MiB (maxBodyBytes)"))
        #expect(ms < 10_000)
    }

    @Test func invalidUTF8() async throws {
        let f = try await SharedServers.fault()
        // In a series the metric reads: no-data naming the line.
        let bad: [UInt8] =
            Array("# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\",path=\"/".utf8)
            + [0xC3, 0x28] + Array("\"} 5\n".utf8)
        try await putDoc(f, "fault-utf8", bad)
        let (s, _) = await once(try errorRate("\(f.base)/doc/fault-utf8"))
        #expect(
            s
                == .noData(
                    reason: "\(f.base)/doc/fault-utf8: line 2: label path of http_requests_total is not valid UTF-8"))
        // In a series it does not read: the right value.
        let sampler = try errorRate("\(f.base)/doc/fault-utf8-other")
        let other: [UInt8] = Array("odd{x=\"".utf8) + [0xFF] + Array("\"} 1\n".utf8)
        try await putDoc(f, "fault-utf8-other", other + Array(exposition(ok: 90, errors: 10).utf8))
        _ = await once(sampler, at: 0)
        try await putDoc(f, "fault-utf8-other", other + Array(exposition(ok: 180, errors: 20).utf8))
        let (v, _) = await once(sampler, at: 5)
        #expect(v == .value(0.1))
    }

    @Test func truncatedExposition() async throws {
        let f = try await SharedServers.fault()
        let sampler = try errorRate("\(f.base)/doc/fault-trunc")
        try await putDoc(f, "fault-trunc", exposition(ok: 900, errors: 100))
        _ = await once(sampler, at: 0)
        // Cut off in the middle of the error series: the 500 count would read as 1 instead of 150.
        let cut = String(exposition(ok: 1800, errors: 150).dropLast(3))
        try await putDoc(f, "fault-trunc", cut)
        let (s, _) = await once(sampler, at: 5)
        #expect(
            s
                == .noData(
                    reason:
                        "\(f.base)/doc/fault-trunc: line 3: truncated: the exposition does not end with a newline (was the response cut off?)"
                ))
        // The next good scrape is measured against the last good one.
        try await putDoc(f, "fault-trunc", exposition(ok: 1800, errors: 200))
        let (v, _) = await once(sampler, at: 10)
        #expect(v == .value(0.1))
    }

    @Test func aCounterReset() async throws {
        let f = try await SharedServers.fault()
        let sampler = try errorRate("\(f.base)/doc/fault-reset")
        try await putDoc(f, "fault-reset", exposition(ok: 1000, errors: 100))
        _ = await once(sampler, at: 0)
        try await putDoc(f, "fault-reset", exposition(ok: 1090, errors: 110))
        let (a, _) = await once(sampler, at: 5)
        #expect(a == .value(0.1))
        // The process restarted: 40 ok and 10 errors since.
        try await putDoc(f, "fault-reset", exposition(ok: 40, errors: 10))
        let (b, _) = await once(sampler, at: 10)
        // (10 + 10) errors of (100 + 50) requests.
        #expect(b.map { abs(($0.number ?? 0) - 20.0 / 150) < 1e-12 } == true, "\(String(describing: b))")
    }

    @Test func manyFaultsAtOnceStayWithinOneTimeout() async throws {
        let f = try await SharedServers.fault()
        let targets = [
            "\(f.base)/hang", "\(f.base)/drip?bytes=100000&ms=20", "\(f.base)/garbage", "\(f.base)/close",
            "http://127.0.0.1:\(unusedPort())/metrics", "\(f.base)/status/503",
        ]
        let sampler = Sampler(
            thresholds: try samplingThresholds(
                metrics: """
                    "error_rate": {"type": "scrape", "targets": [\(targets.map { "\"\($0)\"" }.joined(separator: ","))],
                                   "measure": "errorRatio", "counter": "http_requests_total", "errorLabels": {"code": "5.."},
                                   "timeout": "2s"},
                    "health": {"type": "probe", "targets": [\(targets.map { "\"\($0)\"" }.joined(separator: ","))],
                               "measure": "unhealthyRatio", "timeout": "2s"}
                    """))
        let started = monotonicMs()
        let tick = await sampler.tick(now: t(0))
        let ms = monotonicMs() - started
        // Six 2 s timeouts one after another take 12 s; at once, about 2 s. The bound leaves room for a loaded runner.
        #expect(ms < 8000, "took \(ms) ms: the six 2 s timeouts ran at once (one after another is 12 s)")
        #expect(
            tick.samples["error_rate"]?.reason?.hasPrefix(
                "6 of 6 targets failed: timeout after 2s for \(f.base)/hang; timeout after 2s for \(f.base)/drip")
                == true)
        #expect(tick.samples["error_rate"]?.reason?.hasSuffix("(and 4 more)") == true)
        #expect(tick.samples["health"] == .value(1))
    }
}
