import Testing
@testable import RollbackCore
@testable import RollbackSystem
import TestSupport

/// A real Prometheus server (Debian's `prometheus`), started by the test on a free loopback port with a temporary
/// storage directory, scraping real prometheus_client instances.
final class PrometheusServer: Sendable {
    let process: ServerProcess
    let dir: ScratchDir
    var base: String { process.base }

    private init(process: ServerProcess, dir: ScratchDir) {
        self.process = process
        self.dir = dir
    }

    func stop() {
        process.stop()
        dir.remove()
    }

    static func start(scraping targets: [String]) async throws -> PrometheusServer {
        let hostPorts = targets.map { $0.replacing("http://", with: "") }
        return try await start(
            config: """
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                scrape_configs:
                  - job_name: app
                    static_configs:
                      - targets: [\(hostPorts.map { "'\($0)'" }.joined(separator: ", "))]

                """)
    }

    /// Starts Prometheus with this `prometheus.yml`; `files` (name → content) are written beside it first (rule
    /// files, referenced by their name).
    static func start(config: String, files: [String: String] = [:]) async throws -> PrometheusServer {
        let dir = try ScratchDir("prometheus")
        for (name, text) in files { try FileIO.writeAtomically(path: dir.path + "/" + name, bytes: Array(text.utf8)) }
        try FileIO.writeAtomically(path: dir.path + "/prometheus.yml", bytes: Array(config.utf8))
        var lastError: Error?
        // A free port can be taken between picking and binding: try a few.
        guard let prometheus = program(named: "prometheus") else {
            throw TestFailure("prometheus is not installed (make test-deps installs Debian's prometheus)")
        }
        for _ in 0..<3 {
            let port = unusedPort()
            do {
                // run_watched.py says READY once Prometheus answers /-/ready (it cannot say so itself).
                let p = try await ServerProcess.start(
                    [
                        python3, RepoPaths.server("run_watched.py"), String(port), "/-/ready", "--",
                        prometheus, "--config.file=\(dir.path)/prometheus.yml", "--storage.tsdb.path=\(dir.path)/data",
                        "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
                    ], seconds: 90)
                return PrometheusServer(process: p, dir: dir)
            } catch {
                lastError = error
            }
        }
        dir.remove()
        throw lastError ?? TestFailure("prometheus did not start")
    }

    /// Runs a query until it returns `expected` (Prometheus needs a scrape or two).
    func waitFor(_ query: String, equals expected: Double) async throws {
        var c = PrometheusConfig(url: base, query: query, http: HTTPOptions())
        c.http = patientHTTP()
        let source = PrometheusSource(name: "wait", config: c)
        var last: SampleValue?
        try await waitUntil(
            "\(query) to reach \(expected)", every: .milliseconds(200), explain: { "last: \(String(describing: last))" }
        ) {
            last = await source.sample(now: SystemTime.now())["wait"]
            return last == .value(expected)
        }
    }
}

@Suite struct SamplingPrometheusTests {
    func source(_ base: String, _ query: String, timeout: String = "60s") throws -> PrometheusSource {
        let th = try samplingThresholds(
            metrics: """
                "q": {"type": "prometheus", "url": "\(base)", "query": \(JSONValue.quote(query)), "timeout": "\(timeout)"}
                """)
        guard case let .prometheus(c) = th.metrics[0].source else { throw TestFailure("not prometheus") }
        return PrometheusSource(name: "q", config: c)
    }

    func ask(_ s: PrometheusSource) async -> SampleValue? {
        await s.sample(now: SystemTime.now())["q"]
    }

    @Test func realQueriesAndTheirFailures() async throws {
        let a = try await ServerProcess.python("metrics_app.py")
        let b = try await ServerProcess.python("metrics_app.py")
        try await post("\(a.base)/simulate?ok=270&errors=30&latency=0.2")
        try await post("\(b.base)/simulate?ok=100&errors=0&latency=0.2")
        let prom = try await PrometheusServer.start(scraping: [a.base, b.base])
        defer { prom.stop() }
        try await prom.waitFor("sum(http_requests_total)", equals: 400)

        // The value of a real PromQL query: 30 errors of 400 requests.
        let ratio = try source(prom.base, "sum(http_requests_total{code=~\"5..\"}) / sum(http_requests_total)")
        #expect(await ask(ratio) == .value(0.075))
        // A scalar.
        #expect(await ask(try source(prom.base, "scalar(count(up == 1))")) == .value(2))
        // Empty vector.
        let empty = "sum(rate(no_such_metric_total[5m]))"
        #expect(
            await ask(try source(prom.base, empty))
                == .noData(reason: "empty result for query \(empty) at \(prom.base) (no series matched)"))
        // More than one series.
        #expect(
            await ask(try source(prom.base, "up"))
                == .noData(reason: "query up returned 2 series; aggregate it to one (for example with sum(…))"))
        // NaN (0/0).
        #expect(
            await ask(
                try source(
                    prom.base,
                    "sum(http_requests_total{code=\"404\"} or vector(0)) / sum(http_requests_total{code=\"404\"} or vector(0))"
                ))?.reason?.contains("returned NaN") == true)
        // A syntax error: Prometheus' own message.
        let bad = try #require(await ask(try source(prom.base, "sum(")))
        #expect(bad.reason?.hasPrefix("\(prom.base) rejected query sum(: bad_data: ") == true, "\(bad)")
        // A range vector is not a value.
        #expect(
            await ask(try source(prom.base, "up[1m]"))
                == .noData(reason: "query up[1m] returned a matrix; a scalar or a one-element vector is needed"))
    }

    @Test func anUnreachableOrHangingServer() async throws {
        let port = unusedPort()
        let refused = try source("http://127.0.0.1:\(port)", "up")
        #expect(
            await ask(refused)
                == .noData(reason: "connection refused to http://127.0.0.1:\(port)/api/v1/query (query up)"))
        let f = try await SharedServers.fault()
        let started = monotonicMs()
        let hang = try source("\(f.base)/hang", "up", timeout: "600ms")
        #expect(await ask(hang) == .noData(reason: "timeout after 600ms for \(f.base)/hang/api/v1/query (query up)"))
        // Bounded by the 600 ms timeout, not the 10 s default: generous for a loaded two-core machine.
        #expect(monotonicMs() - started < 9000)
        // Not Prometheus at all.
        let notProm = try source("\(f.base)/status/200", "up")
        #expect(
            await ask(notProm)?.reason == "the answer of \(f.base)/status/200 to query up is not JSON: \"status 200\"")
    }

    @Test func queriesAreEncoded() throws {
        let s = try source("http://127.0.0.1:9090/", "sum(rate(x{code=~\"5..\"}[5m])) / 2")
        #expect(
            s.queryURL
                == "http://127.0.0.1:9090/api/v1/query?query=sum%28rate%28x%7Bcode%3D~%225..%22%7D%5B5m%5D%29%29%20%2F%202"
        )
    }
}
