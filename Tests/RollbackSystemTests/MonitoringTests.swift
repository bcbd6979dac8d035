import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `monitoring/`: the alerting rules checked and unit-tested by `promtool`, a real Prometheus evaluating them
/// against a real `rollbackd run` made blind and then halted, and the Grafana dashboard held to a live scrape.
@Suite(.serialized) struct MonitoringTests {
    static let dir = RepoPaths.root + "/monitoring"
    static let rules = dir + "/rollbackd-alerts.yml"
    static let ruleTests = dir + "/rollbackd-alerts.test.yml"
    static let dashboard = dir + "/rollbackd-dashboard.json"

    /// The alert names of the rules file, in order.
    static func alertNames() throws -> [String] {
        try TestFiles.text(rules).split(separator: "\n").compactMap { line in
            let t = line.trimmingPrefix(while: { $0 == " " })
            return t.hasPrefix("- alert: ") ? String(t.dropFirst("- alert: ".count)) : nil
        }
    }

    @Test func theRulesPassPromtoolCheck() async throws {
        let r = try await Scrape.promtool(["check", "rules", Self.rules])
        #expect(r.termination == .exited(0), "\(r.stdoutText)\(r.stderrText)")
        #expect(r.stdoutText.contains("SUCCESS: \(try Self.alertNames().count) rules found"), "\(r.stdoutText)")
    }

    /// `promtool test rules` passes, and its file shows every alert firing and then resolving.
    @Test func everyAlertFiresAndResolvesInPromtoolsUnitTests() async throws {
        let r = try await Scrape.promtool(["test", "rules", Self.ruleTests])
        #expect(r.termination == .exited(0), "\(r.stdoutText)\(r.stderrText)")
        #expect(r.stdoutText.contains("SUCCESS"), "\(r.stdoutText)")
        // (eval minute, alert, fires) from the test file's alert_rule_test entries.
        var cases: [(minute: Int, alert: String, fires: Bool)] = []
        var minute = -1
        var alert = ""
        for line in try TestFiles.text(Self.ruleTests).split(separator: "\n") {
            let t = String(line.trimmingPrefix(while: { $0 == " " }))
            if t.hasPrefix("- eval_time: "), t.hasSuffix("m") {
                minute = Int(t.dropFirst("- eval_time: ".count).dropLast()) ?? -1
            } else if t.hasPrefix("alertname: ") {
                alert = String(t.dropFirst("alertname: ".count))
            } else if t.hasPrefix("exp_alerts:") {
                cases.append((minute, alert, t != "exp_alerts: []"))
            }
        }
        let names = try Self.alertNames()
        #expect(names.count == 8)
        for name in names {
            let mine = cases.filter { $0.alert == name }
            let fired = mine.filter(\.fires).map(\.minute)
            let resolved = mine.filter { !$0.fires }.map(\.minute)
            #expect(
                fired.contains { f in resolved.contains { $0 > f } }
                    && resolved.contains { r in fired.contains { $0 > r } },
                "\(name): quiet, then firing, then resolved is not shown (firing at \(fired), quiet at \(resolved))")
        }
    }

    /// The rules file with every `for:` shortened to one second: the same expressions, evaluated in a test's time.
    static func quickRules() throws -> String {
        try TestFiles.text(rules).split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.trimmingPrefix(while: { $0 == " " }).hasPrefix("for: ")
                ? String(line.prefix { $0 == " " }) + "for: 1s" : String(line)
        }.joined(separator: "\n")
    }

    /// The alerts Prometheus holds now: name → state (`pending`, `firing`).
    static func alerts(_ prometheus: PrometheusServer) async -> [String: String] {
        guard
            let r = try? await HTTPClient.shared.send(.get(prometheus.base + "/api/v1/alerts", options: patientHTTP()))
                .get(), r.status == 200, let doc = try? JSONParser.parse(bytes: r.body),
            case let .array(items)? = doc["data"]?["alerts"]
        else { return [:] }
        var out: [String: String] = [:]
        for a in items {
            if case let .string(name)? = a["labels"]?["alertname"], case let .string(state)? = a["state"] {
                if out[name] != "firing" { out[name] = state }
            }
        }
        return out
    }

    @Test func aRealPrometheusFiresBlindThenHaltedOnARealDaemon() async throws {
        let port = unusedPort()
        let s = try await TelemetryTests.telemetryScene(listen: "127.0.0.1:\(port)", webhook: true)
        let service = try await s.startService()
        try s.startDaemon()
        let prometheus = try await PrometheusServer.start(
            config: """
                global:
                  scrape_interval: 1s
                  evaluation_interval: 1s
                rule_files: ['rollbackd-alerts.yml']
                scrape_configs:
                  - job_name: rollbackd
                    static_configs:
                      - targets: ['127.0.0.1:\(port)']

                """, files: ["rollbackd-alerts.yml": try Self.quickRules()])
        defer { prometheus.stop() }
        try await s.waitFor("v1 known-good") { s.log.contains("Release v1 is known-good") }
        var last: [String: String] = [:]
        func waitForAlert(_ name: String) async throws {
            try await waitUntil(
                "\(name) firing in Prometheus' /api/v1/alerts", every: .milliseconds(250),
                explain: { "alerts: \(last)\ndaemon log:\n\(s.log)" }
            ) {
                last = await Self.alerts(prometheus)
                return last[name] == "firing"
            }
        }

        // Blind: the service's instance stops answering.
        s.killAndReap(service)
        try await waitForAlert("RollbackdBlind")
        #expect(last["RollbackdHalted"] == nil && last["RollbackdDown"] == nil, "\(last)")

        // Halted: v2 is bad, and so is v1 by the time it is rolled back to: the verification fails.
        try await s.startService()
        s.deploy("v2")
        try FileIO.writeAtomically(
            path: "\(s.dir)/releases/v1/release.json",
            bytes: Array(#"{"version": "v1", "errorRate": 0.6, "latencyMs": 2}"#.utf8), mode: 0o644)
        try await s.waitFor("automation halted") { s.log.contains("automation_halted") }
        try await waitForAlert("RollbackdHalted")

        // The dashboard: every metric name its expressions use is served, and Prometheus parses every expression.
        let page = try await Scrape.get("http://127.0.0.1:\(port)/metrics")
        try await Scrape.expectCleanLint(page)
        let served = Scrape.names(page)
        // The webhook's receiver never answers: its notifications wait in the spool.
        #expect(
            (Scrape.values(page)[#"rollbackd_webhook_pending_notifications{service="demo",webhook="ops"}"#] ?? 0) >= 1)
        let doc = try JSONParser.parse(bytes: Array(try TestFiles.text(Self.dashboard).utf8))
        var exprs: [String] = []
        var templateQueries: [String] = []
        func walk(_ v: JSONValue, key: String?) {
            switch v {
            case let .object(members):
                for m in members { walk(m.value, key: m.key) }
            case let .array(items): for i in items { walk(i, key: nil) }
            case let .string(text) where key == "expr": exprs.append(text)
            case let .string(text) where key == "definition": templateQueries.append(text)
            default: break
            }
        }
        walk(doc, key: nil)
        #expect(exprs.count >= 20 && !templateQueries.isEmpty, "\(exprs.count) expressions")
        for expr in exprs + templateQueries {
            let names = expr.matches(of: /rollbackd_[a-z0-9_]+/).map { String($0.output) }
            #expect(!names.isEmpty || expr.contains("up{"), "\(expr) names no rollbackd metric")
            for name in names {
                #expect(served.contains(name), "the dashboard uses \(name), which /metrics does not serve: \(expr)")
            }
        }
        for expr in exprs {
            let query = expr.replacing("$__rate_interval", with: "1m").replacing("$service", with: ".*")
            let url = prometheus.base + "/api/v1/query?query=" + percentEncode(query)
            let r = try await HTTPClient.shared.send(.get(url, options: patientHTTP())).get()
            #expect(r.status == 200, "Prometheus refused \(query): \(String(decoding: r.body, as: UTF8.self))")
        }
    }
}
