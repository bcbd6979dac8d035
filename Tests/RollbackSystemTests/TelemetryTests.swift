import Testing
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What a scrape of rollbackd's `/metrics` holds, and the independent checks on it (Prometheus' own `promtool`).
enum Scrape {
    /// GET `url`; the body, or a failure naming the status.
    static func get(_ url: String) async throws -> String {
        let r = try await HTTPClient.shared.send(.get(url, options: patientHTTP())).get()
        guard r.status == 200 else { throw TestFailure("GET \(url): HTTP \(r.status)") }
        return String(decoding: r.body, as: UTF8.self)
    }

    /// GET `target` over a Unix socket: the raw HTTP response.
    static func getUnix(_ path: String, _ target: String = "/metrics") throws -> String {
        let fd: Int32
        do { fd = try UnixSocket.connect(path: path) } catch { throw TestFailure("\(error)") }
        defer { close(fd) }
        _ = UnixSocket.writeAll(fd, Array("GET \(target) HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        return String(decoding: readToEnd(fd), as: UTF8.self)
    }

    static func readToEnd(_ fd: Int32) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 8192)
        while true {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 30_000) > 0 else { break }
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    /// Sample lines by their series (`name{labels}` exactly as served) → value.
    static func values(_ text: String) -> [String: Double] {
        var out: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            let v = line[line.index(after: space)...]
            out[String(line[..<space])] = v == "+Inf" ? .infinity : v == "NaN" ? .nan : Double(v)
        }
        return out
    }

    /// Metric names served (the families' sample names, histograms with their suffixes).
    static func names(_ text: String) -> Set<String> {
        Set(
            text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
                line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
            })
    }

    /// `promtool ARGS` with `stdin`; fails when promtool is missing.
    static func promtool(_ args: [String], stdin: String = "") async throws -> ProcessResult {
        guard let promtool = program(named: "promtool") else {
            throw TestFailure("promtool is not installed (make test-deps installs Debian's prometheus, which ships it)")
        }
        do {
            return try await ProcessRunner.run(
                [promtool] + args, stdin: Array(stdin.utf8), timeout: .seconds(120), maxOutputBytes: 1 << 20)
        } catch {
            throw TestFailure("\(error)")
        }
    }

    /// `promtool check metrics` must print nothing and exit 0: the format is right and every lint passes.
    static func expectCleanLint(_ text: String) async throws {
        let r = try await promtool(["check", "metrics"], stdin: text)
        #expect(
            r.termination == .exited(0) && r.stdoutText.isEmpty && r.stderrText.isEmpty,
            "promtool check metrics: \(r.summary(timeout: .seconds(120)))\n\(r.stdoutText)\(r.stderrText)")
    }
}

/// rollbackd's own `/metrics`: a real `rollbackd run` scraped over loopback TCP and a Unix socket, checked by
/// `promtool`, and its values held against the daemon's own status.
@Suite(.serialized) struct TelemetryTests {
    typealias Scene = DaemonTests.Scene

    /// The daemon scene with `/metrics` on `listen`; with `webhook`, one webhook whose receiver never answers
    /// (connection refused), so its spool fills.
    static func telemetryScene(listen: String, webhook: Bool = false) async throws -> Scene {
        let s = try Scene()
        var top = #", "telemetry": {"listen": "\#(listen)"}"#
        if webhook {
            try FileIO.writeAtomically(
                path: "\(s.dir)/webhook.secret", bytes: Array("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".utf8),
                mode: 0o600)
            top +=
                #", "notify": {"webhooks": [{"name": "ops", "url": "http://127.0.0.1:1/hook", "secretFile": "\#(s.dir)/webhook.secret"}]}"#
        }
        try s.writeConfig(interval: "1s", top: top)
        return s
    }

    /// A status and a scrape taken while the daemon's state stood still (the status before and after agree).
    static func consistent(_ s: Scene, _ url: String, _ key: @escaping (JSONValue) -> JSONValue?) async throws -> (
        JSONValue, [String: Double]
    ) {
        var result: (JSONValue, [String: Double])?
        try await s.waitFor("a scrape between two equal status answers") {
            guard let before = try? s.control([("command", .string("status"))])["report"] else { return false }
            // Not async here: a blocking GET over the loopback is fine inside the poll.
            guard let text = try? Self.blockingGet(url) else { return false }
            guard let after = try? s.control([("command", .string("status"))])["report"] else { return false }
            guard key(before) == key(after) else { return false }
            result = (after, Scrape.values(text))
            return true
        }
        return try #require(result)
    }

    static func blockingGet(_ url: String) throws -> String {
        // http://127.0.0.1:PORT/metrics
        let hostPort = url.dropFirst("http://".count).split(separator: "/").first.map(String.init) ?? ""
        let parts = hostPort.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { throw TestFailure("bad url \(url)") }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr(String(parts[0]))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else { throw TestFailure("connect \(url) failed") }
        _ = UnixSocket.writeAll(fd, Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let text = String(decoding: Scrape.readToEnd(fd), as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let body = text.firstRange(of: "\r\n\r\n") else {
            throw TestFailure("GET \(url): \(text.prefix(200))")
        }
        return String(text[body.upperBound...])
    }

    @Test func aLiveScrapePassesPromtoolAndMatchesTheDaemon() async throws {
        let port = unusedPort()
        let url = "http://127.0.0.1:\(port)/metrics"
        let s = try await Self.telemetryScene(listen: "127.0.0.1:\(port)")
        try await s.startService()
        try s.startDaemon()
        // The snapshot is published at the end of the tick that logs the event: wait for a scrape that shows it.
        var first = ""
        try await s.waitFor("v1 known-good in a scrape") {
            first = (try? Self.blockingGet(url)) ?? ""
            return Scrape.values(first)[#"rollbackd_known_good_releases{service="demo"}"#] == 1
        }
        try await Scrape.expectCleanLint(first)
        let v = Scrape.values(first)
        #expect(v[#"rollbackd_release_info{service="demo",version="v1"}"#] == 1)
        #expect(v[#"rollbackd_known_good_releases{service="demo"}"#] == 1)
        #expect(v[#"rollbackd_armed{service="demo"}"#] == 1)
        #expect(v[#"rollbackd_tick_interval_seconds{service="demo"}"#] == 1)
        #expect((v[#"rollbackd_tick_duration_seconds_count{service="demo"}"#] ?? 0) >= 3)
        #expect((v[#"rollbackd_metric_sample_duration_seconds_count{service="demo",metric="error_rate"}"#] ?? 0) >= 3)
        #expect(
            v[#"rollbackd_build_info{version="\#(BuildInfo.version)",swift_version="\#(BuildInfo.swiftVersion)"}"#] == 1
        )

        // A bad release: the scrape shows the trigger firing, with the value, threshold and evidence the daemon's
        // status shows at the same moment.
        s.deploy("v2")
        try await s.waitFor("the trigger firing in a scrape") {
            let text = (try? Self.blockingGet(url)) ?? ""
            return Scrape.values(text)[#"rollbackd_trigger_state{service="demo",trigger="errors",state="firing"}"#] == 1
        }
        let (status, scraped) = try await Self.consistent(s, url) { report in
            guard case let .array(triggers)? = report["triggers"] else { return nil }
            return triggers.first
        }
        guard case let .array(triggers)? = status["triggers"], let t = triggers.first else {
            throw TestFailure("status has no triggers: \(status)")
        }
        let phase = t["phase"].flatMap { if case let .string(p) = $0 { p } else { nil } } ?? "?"
        for p in TriggerPhase.allCases {
            #expect(
                scraped[#"rollbackd_trigger_state{service="demo",trigger="errors",state="\#(p.rawValue)"}"#]
                    == (p.rawValue == phase ? 1 : 0), "phase \(phase)")
        }
        if case let .number(value)? = t["value"] {
            #expect(scraped[#"rollbackd_trigger_value{service="demo",trigger="errors"}"#] == value)
        }
        if case let .number(threshold)? = t["threshold"] {
            #expect(scraped[#"rollbackd_trigger_threshold{service="demo",trigger="errors"}"#] == threshold)
        }
        if case let .number(events)? = t["evidence"]?["events"], case let .number(trials)? = t["evidence"]?["trials"],
            case let .number(strength)? = t["evidence"]?["strength"]
        {
            #expect(scraped[#"rollbackd_trigger_evidence_events{service="demo",trigger="errors"}"#] == events)
            #expect(scraped[#"rollbackd_trigger_evidence_trials{service="demo",trigger="errors"}"#] == trials)
            let served = scraped[#"rollbackd_trigger_evidence_ratio{service="demo",trigger="errors"}"#] ?? -1
            #expect(abs(served - strength) < 1e-9, "served \(served), status \(strength)")
        } else {
            Issue.record("the status shows no evidence for the counted trigger: \(t)")
        }

        // Rolled back and verified: the counters say so, and the richer page still lints clean.
        try await s.waitFor("verification") { s.log.contains("verification_passed") }
        try await s.waitFor("the counters of the rollback") {
            let v = Scrape.values((try? Self.blockingGet(url)) ?? "")
            return v[#"rollbackd_verifications_total{service="demo",result="passed"}"#] == 1
        }
        let after = try await Scrape.get(url)
        try await Scrape.expectCleanLint(after)
        let w = Scrape.values(after)
        #expect(w[#"rollbackd_rollbacks_started_total{service="demo"}"#] == 1)
        #expect(w[#"rollbackd_rollbacks_finished_total{service="demo"}"#] == 1)
        #expect(w[#"rollbackd_rollbacks_failed_total{service="demo"}"#] == 0)
        #expect(w[#"rollbackd_decisions_total{service="demo",outcome="rollback"}"#] == 1)
        #expect(w[#"rollbackd_events_total{service="demo",kind="incident_opened"}"#] == 1)
        #expect(w[#"rollbackd_release_info{service="demo",version="v1"}"#] == 1)
        #expect(w[#"rollbackd_release_info{service="demo",version="v2"}"#] == nil)
    }

    /// On a Unix socket; sources that refuse connections make the watchdog blind, and the scrape says so with a
    /// bounded reason. Four scrapers that never send a request hold every connection: a fifth is refused at once
    /// (503), and the ticks go on meanwhile.
    @Test func aUnixSocketServesBlindnessAndStuckScrapersDelayNoTick() async throws {
        let s = try Scene()
        let sock = "\(s.dir)/metrics.sock"
        try s.writeConfig(interval: "200ms", top: #", "telemetry": {"listen": "\#(sock)"}"#)
        try s.startDaemon()
        try await s.waitFor("the metrics socket") { (try? Scrape.getUnix(sock))?.hasPrefix("HTTP/1.1 200") == true }
        let notFound = try Scrape.getUnix(sock, "/other")
        #expect(notFound.hasPrefix("HTTP/1.1 404"), "\(notFound.prefix(100))")
        // Four idle connections take every slot.
        var stuck: [Int32] = []
        defer { for fd in stuck { close(fd) } }
        let opened = monotonicMs()
        for _ in 0..<4 { stuck.append(try UnixSocket.connect(path: sock)) }
        // No service listens on the instance port: the watchdog goes blind after three ticks.
        try await s.waitFor("blindness") { s.log.contains("source_blind") }
        if monotonicMs() - opened < 4000 {
            // The stuck connections still hold every slot (they are dropped after 5 s): refused at once.
            let refused = try Scrape.getUnix(sock)
            #expect(
                refused.hasPrefix("HTTP/1.1 503"),
                "\(refused.prefix(100)) after \(monotonicMs() - opened) ms; daemon log:\n\(s.log)")
        }
        for fd in stuck { close(fd) }
        stuck = []
        var page = ""
        // The event is logged during the tick that then publishes its snapshot: wait for a scrape showing it.
        try await s.waitFor("a scrape showing the blindness once the idle connections are gone") {
            guard let r = try? Scrape.getUnix(sock), r.hasPrefix("HTTP/1.1 200"),
                let body = r.firstRange(of: "\r\n\r\n")
            else { return false }
            page = String(r[body.upperBound...])
            return Scrape.values(page)[#"rollbackd_metric_blind{service="demo",metric="error_rate"}"#] == 1
        }
        try await Scrape.expectCleanLint(page)
        let v = Scrape.values(page)
        #expect(v[#"rollbackd_metric_blind{service="demo",metric="error_rate"}"#] == 1)
        #expect(v[#"rollbackd_metric_no_data{service="demo",metric="error_rate",reason="unreachable"}"#] == 1)
        #expect((v[#"rollbackd_metric_consecutive_no_data{service="demo",metric="error_rate"}"#] ?? 0) >= 3)
        #expect(v[#"rollbackd_metric_value{service="demo",metric="error_rate"}"#] == nil)
    }

    /// A second daemon on the same port is refused at start, naming the address.
    @Test func aTakenPortIsAClearStartError() async throws {
        let port = unusedPort()
        let s = try await Self.telemetryScene(listen: "127.0.0.1:\(port)")
        try s.startDaemon()
        try await s.waitFor("the first daemon's /metrics") {
            (try? Self.blockingGet("http://127.0.0.1:\(port)/metrics")) != nil
        }
        let r = try await runRollbackd([
            "run", "--config", "\(s.dir)/thresholds.json", "--state-dir", "\(s.dir)/state2", "--socket",
            "\(s.dir)/control2.sock", "--log-target", "stderr",
        ])
        #expect(r.termination == .exited(1))
        #expect(
            r.stderrText.contains("telemetry.listen 127.0.0.1:\(port): cannot listen: Address already in use"),
            "\(r.stderrText)")
    }
}
