import Testing
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
@testable import RollbackDemo
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `rollbackd demo` and `rollbackd drill`, run as the real binary against real `rollbackd-demo-service`
/// instances on loopback. Bounds prove "it ends" and "the numbers make sense", not speed (that is for benchmarks).
@Suite(.serialized) struct DemoDrillTests {
    static func number(_ v: JSONValue?) -> Double? {
        if case let .number(n)? = v { return n }
        return nil
    }

    @Test func demoJSONEndsWithAVerifiedRollbackAndCleansUp() async throws {
        let dir = try ScratchDir("demo-test").path
        let r = try await runRollbackd(["demo", "--json", "--no-journal", "--work-dir", dir], timeout: .seconds(150))
        #expect(r.termination == .exited(0), "\(r.stderrText)")
        // The daemon's state reached disk on every save (a value JSON cannot hold once stopped it, silently).
        #expect(!r.stderrText.contains("cannot save"), "\(r.stderrText)")
        let summary = try JSONParser.parse(r.stdoutText)
        #expect(summary["outcome"] == .string("verified"), "\(r.stdoutText)\n\(r.stderrText)")
        let detect = try #require(Self.number(summary["detectSeconds"]))
        let rollback = try #require(Self.number(summary["rollbackSeconds"]))
        let recovery = try #require(Self.number(summary["verifiedRecoverySeconds"]))
        let wall = try #require(Self.number(summary["wallSeconds"]))
        // Sane, not fast: the trigger fires on evidence after the deploy (the service reads its new release within
        // a second); the rollback follows the detection; the verification lasts verifyFor (8 s); the whole demo
        // must end well inside `make demo`'s two minutes.
        #expect(detect > 0 && detect < 60, "detect \(detect)")
        #expect(rollback >= detect && rollback < detect + 30, "rollback \(rollback)")
        #expect(recovery >= rollback + 7.5 && recovery < 90, "recovery \(recovery)")
        #expect(wall > recovery && wall < 120, "wall \(wall)")
        #expect(summary["live"] == .string("v1")) // when the story ended, before clean-up removed the releases
        #expect(summary["trigger"] == .string("critical-error-rate"))
        #expect(
            (summary["evidence"].flatMap { if case let .string(e) = $0 { return e } else { return nil } } ?? "")
                .contains("99% evidence for errors > 10% reached"), "\(r.stdoutText)")
        // The report and the event log stay; the releases, the link and every process are gone.
        guard case let .string(report)? = summary["report"] else { throw TestFailure("no report in \(r.stdoutText)") }
        #expect(report.hasPrefix(dir + "/state/incidents/") && FileIO.exists(report))
        let events = try TestFiles.text(dir + "/events.jsonl")
        for kind in ["trigger_firing", "rollback_started", "rollback_finished", "verification_passed"] {
            #expect(events.contains("\"kind\":\"\(kind)\""), "\(kind) missing from events.jsonl")
        }
        if case let .array(timeline)? = summary["timeline"] {
            #expect(timeline.contains { $0["kind"] == .string("verification_passed") })
        } else {
            Issue.record("no timeline in \(r.stdoutText)")
        }
        #expect(!FileIO.exists(dir + "/releases") && !FileIO.exists(dir + "/current"))
        #expect(Processes.mentioning(dir).isEmpty, "\(Processes.mentioning(dir))")
        // The story went to stderr with --json: the status line and the timeline.
        #expect(r.stderrText.contains("critical-error-rate firing"))
        #expect(r.stderrText.contains("timeline"))
    }

    @Test func ctrlCStopsTheDemoAndCleansUp() async throws {
        let dir = try ScratchDir("demo-int").path
        let log = dir + ".log"
        defer { unlink(log) }
        let demo = try ChildProcess([RepoPaths.binary, "demo", "--no-journal", "--work-dir", dir], log: log)
        defer { demo.stop() }
        try await waitUntil(
            "the demo to reach release_known_good", every: .milliseconds(100),
            explain: { TestFiles.read(log) ?? "" }
        ) { (TestFiles.read(log) ?? "").contains("release_known_good") }
        #expect(!Processes.mentioning(dir + "/current").isEmpty)
        kill(demo.pid, SIGINT)
        let end = await BlockingThread.run { demo.waitExit(timeout: .seconds(60)) }
        let text = (try? TestFiles.text(log)) ?? ""
        #expect(end == .exited(128 + SIGINT), "\(String(describing: end))\n\(text)")
        #expect(text.contains("interrupted"))
        #expect(!FileIO.exists(dir + "/releases") && !FileIO.exists(dir + "/current"))
        #expect(Processes.mentioning(dir).isEmpty, "\(Processes.mentioning(dir))")
    }

    /// A staging target: releases v1 and v2 for the symlink strategy, v2 live, one demo-service instance.
    final class Staging {
        let dir: String
        let port: Int
        let service: ChildProcess
        let traffic: ChildProcess
        var daemon: ChildProcess?

        init() throws {
            dir = try ScratchDir("drill").path
            port = unusedPort()
            try Demo.writeRelease(dir, "v1", errorRate: 0, latencyMs: 2)
            try Demo.writeRelease(dir, "v2", errorRate: 0, latencyMs: 2)
            try Demo.pointLink(dir + "/current", at: dir + "/releases/v2")
            let json = """
                {"service": "staging", "interval": "1s", "instances": ["http://127.0.0.1:\(port)"],
                 "metrics": {"error_rate": {"type": "scrape", "path": "/metrics", "measure": "errorRatio", "timeout": "30s",
                                            "counter": "http_requests_total", "errorLabels": {"code": "5.."}, "window": "2s"}},
                 "triggers": [{"name": "errors", "metric": "error_rate", "condition": {"above": 0.1}, "breaches": 2,
                               "clears": 2, "severity": "critical", "respondWithin": "2m", "automation": "full"}],
                 "rollback": {"strategy": "symlink", "symlink": {"releasesDir": "\(dir)/releases", "currentLink": "\(dir)/current"}},
                 "safety": {"verifyFor": "4s"}}
                """
            try FileIO.writeAtomically(path: dir + "/thresholds.json", bytes: Array(json.utf8), mode: 0o600)
            service = try ChildProcess(
                [RepoPaths.demoService, "--port", String(port), "--release-dir", dir + "/current"],
                log: dir + "/service.log")
            // Traffic from a process of its own, which a busy test runner cannot starve.
            traffic = try ChildProcess(
                [
                    "/usr/bin/python3", RepoPaths.server("traffic.py"),
                    "http://127.0.0.1:\(port)/api/x", "--burst", "3", "--every", "0.03",
                ],
                log: dir + "/traffic.log")
        }

        var state: String { dir + "/state" }
        var config: String { dir + "/thresholds.json" }

        func current() -> String { TestFiles.readLink(dir + "/current") ?? "" }

        /// Returns once the demo service answers (the drill verifies with its metrics).
        func serviceAnswers() async throws {
            let url = "http://127.0.0.1:\(port)/metrics", log = dir + "/service.log"
            try await waitUntil("the demo service to answer \(url)", explain: { TestFiles.read(log) ?? "" }) {
                (try? await HTTPClient.shared.send(.get(url, options: patientHTTP())).get().status) == 200
            }
        }

        func drill(_ extra: [String] = []) async throws -> ProcessResult {
            try await runRollbackd(
                [
                    "drill", "--config", config, "--state-dir", state, "--to", "v1",
                    "--verify-for", "4s", "--json",
                ] + extra, timeout: .seconds(90))
        }

        /// `rollbackd status --json` of a daemon started on this state directory, then stopped.
        func status() async throws -> JSONValue {
            let socket = dir + "/control.sock"
            let d = try ChildProcess(
                [
                    RepoPaths.binary, "run", "--config", config, "--state-dir", state, "--socket", socket,
                    "--log-target", "stderr",
                ], log: dir + "/daemon.log")
            defer { d.stop() }
            let log = dir + "/daemon.log"
            return try await waitFor(
                "the daemon to answer status on \(socket)", every: .milliseconds(100),
                explain: { TestFiles.read(log) ?? "" }
            ) {
                try? ControlClient.send(.object([("command", .string("status"))]), socket: socket)
            }
        }

        deinit {
            traffic.stop()
            service.stop()
        }
    }

    @Test func drillRollsBackVerifiesRollsForwardAndRecordsIt() async throws {
        let s = try Staging()
        try await s.serviceAnswers()
        // Never drilled: check (with the state directory) and status warn; check of the file alone does not.
        let before = try await runRollbackd(["check", s.config, "--state-dir", s.state])
        #expect(
            before.succeeded && before.stderrText.contains("no rollback drill has been recorded"),
            "\(before.stderrText)")
        let plain = try await runRollbackd(["check", s.config])
        #expect(plain.succeeded && !plain.stderrText.contains("drill"), "\(plain.stderrText)")
        let statusBefore = try await s.status()
        #expect(statusBefore["report"]?["drillWarning"] != .null)
        if case let .string(text)? = statusBefore["text"] {
            #expect(text.contains("warning: ") && text.contains("rollback drill"))
        }

        // Another rollback holds the lock: the drill refuses and changes nothing.
        do {
            let lock = try RollbackLock.acquire(stateDirectory: s.state, holder: "test incident")
            let refused = try await s.drill()
            lock.release()
            #expect(refused.termination == .exited(1))
            #expect(refused.stderrText.contains("another rollback is in progress"), "\(refused.stderrText)")
            #expect(s.current().hasSuffix("/releases/v2"))
            #expect(try DrillLog(stateDirectory: s.state).load().isEmpty)
        }

        // A good target: rolled back, verified, rolled forward, recorded.
        let r = try await s.drill()
        #expect(r.termination == .exited(0), "\(r.stderrText)")
        let record = try JSONParser.parse(r.stdoutText)
        #expect(record["outcome"] == .string("verified"))
        #expect(record["rolledForward"] == .bool(true))
        let recovery = try #require(Self.number(record["recoverySeconds"]))
        #expect(recovery >= 4 && recovery < 60, "recovery \(recovery)")
        #expect(r.stderrText.contains("rolled forward to v2"))
        #expect(s.current().hasSuffix("/releases/v2"))
        let drills = try DrillLog(stateDirectory: s.state).load()
        #expect(drills.count == 1 && drills.first?.from == "v2" && drills.first?.to == "v1")

        // Fresh success: no warning from check or status.
        let after = try await runRollbackd(["check", s.config, "--state-dir", s.state])
        #expect(after.succeeded && !after.stderrText.contains("drill"), "\(after.stderrText)")
        let statusAfter = try await s.status()
        #expect(statusAfter["report"]?["drillWarning"] == .null)

        // A bad target: verification fails, the drill still rolls forward and says so; the last success counts.
        try Demo.writeRelease(s.dir, "v1", errorRate: 0.9, latencyMs: 2)
        let bad = try await s.drill()
        #expect(bad.termination == .exited(1))
        let badRecord = try JSONParser.parse(bad.stdoutText)
        #expect(badRecord["outcome"] == .string("verification_failed"), "\(bad.stdoutText)\n\(bad.stderrText)")
        #expect(badRecord["rolledForward"] == .bool(true))
        #expect(bad.stderrText.contains("rolling forward to v2 anyway"))
        #expect(s.current().hasSuffix("/releases/v2"))
        #expect(try DrillLog(stateDirectory: s.state).load().count == 2)
        let still = try await runRollbackd(["check", s.config, "--state-dir", s.state])
        #expect(!still.stderrText.contains("drill"), "\(still.stderrText)")

        // A success older than 30 days: check warns.
        let old = try ScratchDir("drill-old").path
        let when = SystemTime.now() - .hours(24 * 40)
        try DrillLog(stateDirectory: old).append(
            DrillRecord(
                id: "d", startedAt: when, finishedAt: when, from: "v2", to: "v1",
                strategy: "symlink", outcome: .verified, recoverySeconds: 10,
                rollbackSeconds: 0.01, rolledForward: true, detail: ""))
        let stale = try await runRollbackd(["check", s.config, "--state-dir", old])
        #expect(stale.succeeded && stale.stderrText.contains("40 days ago"), "\(stale.stderrText)")
    }
}
