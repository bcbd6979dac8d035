import Testing
@testable import RollbackCore
@testable import RollbackSystem
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Dark is not down: a probe or scrape that never reached its host says nothing about the release; one that the
/// host answered badly does. Real sockets for each case: a listener whose accept queue is full (the handshake is
/// never answered: a connect timeout), a closed port (refused), a server that accepts and never answers.
@Suite struct SamplingDarkTests {
    /// A loopback listener that never accepts, its one-slot accept queue filled by a first connection, so every
    /// later SYN is dropped and a client's connect times out, as behind a dead route.
    final class DarkListener: Sendable {
        let port: Int
        private let listener: Int32
        private let filler: Int32

        init() throws {
            let l = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(l, $0, len) }
            }
            guard l >= 0, bound == 0, listen(l, 0) == 0 else { throw TestFailure("cannot listen on loopback") }
            _ = withUnsafeMutablePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(l, $0, &len) }
            }
            let f = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            let connected = withUnsafePointer(to: &addr) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(f, $0, len) }
            }
            listener = l
            filler = f
            port = Int(UInt16(bigEndian: addr.sin_port))
            guard connected == 0 else { throw TestFailure("cannot fill the accept queue of 127.0.0.1:\(port)") }
        }

        deinit {
            close(filler)
            close(listener)
        }
    }

    func metrics(_ targets: [String], scrape: Bool = false) -> String {
        let list = targets.map { "\"\($0)\"" }.joined(separator: ", ")
        var text = """
            "health": {"type": "probe", "targets": [\(list)], "measure": "unhealthyRatio", "timeout": "30s", "connectTimeout": "300ms"},
            "probe_errors": {"type": "probe", "targets": [\(list)], "measure": "errorRatio", "timeout": "30s", "connectTimeout": "300ms"}
            """
        if scrape {
            text += """
                ,
                "scrape_errors": {"type": "scrape", "targets": [\(list)], "measure": "errorRatio", "counter": "http_requests_total",
                                  "errorLabels": {"code": "5.."}, "timeout": "30s", "connectTimeout": "300ms"}
                """
        }
        return text
    }

    @Test func aHostThatNeverAnswersTheHandshakeMakesTheSampleBlindNotUnhealthy() async throws {
        let dark = try DarkListener()
        // The precondition the test rests on: the port really does not complete a handshake.
        let probe = TCPProbe.checkBlocking("127.0.0.1:\(dark.port)", timeout: .ms(300))
        #expect(probe?.contains("no answer within") == true, "\(probe ?? "connected")")
        let url = "http://127.0.0.1:\(dark.port)/healthz"
        let sampler = Sampler(thresholds: try samplingThresholds(metrics: metrics([url], scrape: true)))
        let tick = await sampler.tick(now: Timestamp(millisecondsSinceEpoch: 1_800_000_000_000))
        for name in ["health", "probe_errors", "scrape_errors"] {
            let reason = tick.samples[name]?.reason ?? "a value: \(String(describing: tick.samples[name]))"
            #expect(reason.hasPrefix("blind: no target reachable: "), "\(name): \(reason)")
            #expect(reason.contains("connect timeout after 300ms to \(url)"), "\(name): \(reason)")
        }
    }

    @Test func whenSomeTargetsAnswerTheUnreachableOnesCountAsUnhealthy() async throws {
        let dark = try DarkListener()
        let f = try await SharedServers.fault()
        let targets = ["http://127.0.0.1:\(dark.port)/healthz", "\(f.base)/status/200", "\(f.base)/status/200"]
        let sampler = Sampler(thresholds: try samplingThresholds(metrics: metrics(targets)))
        let tick = await sampler.tick(now: Timestamp(millisecondsSinceEpoch: 1_800_000_000_000))
        #expect(
            tick.samples["health"]?.number.map { abs($0 - 1.0 / 3) < 1e-12 } == true,
            "\(String(describing: tick.samples["health"]))")
        #expect(tick.samples["probe_errors"]?.number.map { abs($0 - 1.0 / 3) < 1e-12 } == true)
    }

    @Test func aRefusalAndAStallAfterConnectingAreUnhealthy() async throws {
        let f = try await SharedServers.fault()
        let refused = "http://127.0.0.1:\(unusedPort())/healthz"
        let sampler = Sampler(
            thresholds: try samplingThresholds(
                metrics: """
                    "health": {"type": "probe", "targets": ["\(refused)", "\(f.base)/hang"], "measure": "unhealthyRatio", "timeout": "1s"}
                    """))
        let tick = await sampler.tick(now: Timestamp(millisecondsSinceEpoch: 1_800_000_000_000))
        #expect(tick.samples["health"] == .value(1), "\(String(describing: tick.samples["health"]))")
        let notes = tick.notes["health"]?.joined(separator: " ") ?? ""
        #expect(
            notes.contains("connection refused to \(refused)") && notes.contains("timeout after 1s for \(f.base)/hang"),
            "\(notes)")
    }

    /// (Timeouts of 5 s: a freshly started helper on a loaded machine must answer within them; only a stopped one
    /// does not.)
    /// A real stall: both health targets are processes stopped with SIGSTOP (the kernel still completes handshakes
    /// into their listen queues, nobody answers), as when the watchdog's host or network stalls and every probe of a
    /// tick times out together. That tick is blind, not two unhealthy instances; once one target answers again, the
    /// other's silence counts (a hung instance among answering ones is the service's doing).
    @Test func aTickInWhichNoProbeGetsAnAnswerIsBlindNotAllUnhealthy() async throws {
        let servers = [
            try await ServerProcess.python("fault_server.py"), try await ServerProcess.python("fault_server.py"),
        ]
        defer { for s in servers { kill(s.pid, SIGCONT) } }
        let targets = servers.map { "\($0.base)/status/200" }
        let list = targets.map { "\"\($0)\"" }.joined(separator: ", ")
        let sampler = Sampler(
            thresholds: try samplingThresholds(
                metrics: """
                    "health": {"type": "probe", "targets": [\(list)], "measure": "unhealthyRatio", "timeout": "5s"},
                    "probe_errors": {"type": "probe", "targets": [\(list)], "measure": "errorRatio", "timeout": "5s"}
                    """))
        let t0: Int64 = 1_800_000_000_000
        var tick = await sampler.tick(now: Timestamp(millisecondsSinceEpoch: t0))
        #expect(tick.samples["health"] == .value(0), "\(String(describing: tick.samples["health"]))")

        for s in servers { #expect(kill(s.pid, SIGSTOP) == 0) }
        tick = await sampler.tick(now: Timestamp(millisecondsSinceEpoch: t0 + 1000))
        for name in ["health", "probe_errors"] {
            let reason = tick.samples[name]?.reason ?? "a value: \(String(describing: tick.samples[name]))"
            #expect(
                reason.hasPrefix("blind: no target answered within 5s: 2 of 2 targets silent: "),
                "\(name): \(reason)")
            #expect(reason.contains("timeout after 5s for \(targets[0])"), "\(name): \(reason)")
            // No evidence either way: the sequential test gets nothing from this tick.
            #expect(tick.counts[name] == nil, "\(name): \(String(describing: tick.counts[name]))")
        }

        kill(servers[1].pid, SIGCONT)
        tick = await sampler.tick(now: Timestamp(millisecondsSinceEpoch: t0 + 2000))
        #expect(tick.samples["health"] == .value(0.5), "\(String(describing: tick.samples["health"]))")
        #expect(tick.counts["health"] == Counts(events: 1, trials: 2))
        let notes = tick.notes["health"]?.joined(separator: " ") ?? ""
        #expect(notes.contains("timeout after 5s for \(targets[0])"), "\(notes)")
    }
}
