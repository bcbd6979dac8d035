import Testing
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
import TestSupport
#if canImport(Glibc)
import Glibc
import RollbackVersion
#endif

/// The real daemon (`rollbackd run`) guarding the real demo service on loopback: a bad release is detected,
/// rolled back with the symlink strategy, verified, reported, and the control socket and reload behave.
@Suite(.serialized) struct DaemonTests {
    /// A daemon's world in a scratch directory: releases v1 (good) and v2 (bad) for the symlink strategy, the demo
    /// service with steady traffic, the daemon and whatever else a test starts, each a `ChildProcess` with its log
    /// in the directory. Every process is stopped when the scene is released.
    final class Scene {
        let dir: String
        let port: Int
        private var children: [ChildProcess] = []

        init() throws {
            dir = try ScratchDir("daemon").path
            port = Int.random(in: 20000...29999)
            for (v, rate) in [("v1", 0.0), ("v2", 0.6)] {
                try FileIO.makeDirectories("\(dir)/releases/\(v)")
                try FileIO.writeAtomically(
                    path: "\(dir)/releases/\(v)/release.json",
                    bytes: Array(#"{"version": "\#(v)", "errorRate": \#(rate), "latencyMs": 2}"#.utf8), mode: 0o644)
            }
            _ = symlink("\(dir)/releases/v1", "\(dir)/current")
            try writeConfig(interval: "1s")
        }

        /// `extra` goes into `metrics`, `top` into the top-level object (`, "telemetry": {…}`).
        func writeConfig(interval: String, extra: String = "", reload: String? = nil, top: String = "") throws {
            let reloadKey = reload.map { #", "reload": \#($0)"# } ?? ""
            let json = """
                {"service": "demo", "interval": "\(interval)", "instances": ["http://127.0.0.1:\(port)"],
                 "metrics": {"error_rate": {"type": "scrape", "path": "/metrics", "measure": "errorRatio", "timeout": "30s",
                                            "counter": "http_requests_total", "errorLabels": {"code": "5.."}, "window": "3s"}\(extra)},
                 "triggers": [{"name": "errors", "metric": "error_rate", "condition": {"above": 0.1}, "breaches": 3,
                               "clears": 2, "severity": "critical", "respondWithin": "2m", "automation": "full"}],
                 "rollback": {"strategy": "symlink", "symlink": {"releasesDir": "\(dir)/releases", "currentLink": "\(dir)/current"\(reloadKey)}},
                 "safety": {"cooldown": "0s", "soak": "3s", "verifyFor": "6s", "deployWindow": "10m", "baselineWindow": "1m"}\(top)}
                """
            try FileIO.writeAtomically(path: "\(dir)/thresholds.json", bytes: Array(json.utf8), mode: 0o644)
        }

        /// A `reload` argv (JSON) that blocks until the test calls `release(gate)`: a phase that lasts exactly until
        /// the test has done what it must do inside it. (Bounded at 2 minutes, after which it fails, so a test that
        /// died never leaves it behind.)
        func gatedReload(_ gate: String) -> String {
            let file = "\(dir)/\(gate)"
            return
                #"["/bin/sh", "-c", "i=0; while [ ! -e \#(file) ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done; [ -e \#(file) ]"]"#
        }

        func release(_ gate: String) {
            let fd = open("\(dir)/\(gate)", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
            if fd >= 0 { close(fd) }
        }

        @discardableResult
        func spawn(_ argv: [String], log: String) throws -> pid_t {
            let child: ChildProcess
            do { child = try ChildProcess(argv, log: log) } catch { throw TestFailure(error.description) }
            children.append(child)
            return child.pid
        }

        /// The demo service and its traffic; returns the service's pid once it answers.
        @discardableResult
        func startService(burst: Int = 4, every: Double = 0.02) async throws -> pid_t {
            let bin = RepoPaths.demoService
            guard FileIO.exists(bin) else { throw TestFailure("\(bin) is missing: swift build builds it") }
            let service = try spawn(
                [bin, "--port", String(port), "--release-dir", "\(dir)/current"], log: "\(dir)/service.log")
            // Traffic from a process of its own: a task here could be starved by a busy test runner, and a watchdog
            // that sees no traffic cannot verify a recovery.
            try spawn(
                [
                    "/usr/bin/python3", RepoPaths.server("traffic.py"), "http://127.0.0.1:\(port)/api/x",
                    "--burst", String(burst), "--every", String(every),
                ], log: "\(dir)/traffic.log")
            let serviceLog = "\(dir)/service.log", url = "http://127.0.0.1:\(port)/metrics"
            try await waitUntil("the demo service to answer \(url)", explain: { TestFiles.read(serviceLog) ?? "" }) {
                guard kill(service, 0) == 0 else {
                    throw TestFailure("the demo service exited: \(TestFiles.read(serviceLog) ?? "")")
                }
                return (try? await HTTPClient.shared.send(.get(url, options: patientHTTP())).get().status) == 200
            }
            return service
        }

        @discardableResult
        func startDaemon(_ extra: [String] = [], log: String = "daemon.log") throws -> pid_t {
            try spawn(
                [
                    RepoPaths.binary, "run", "--config", "\(dir)/thresholds.json", "--state-dir", "\(dir)/state",
                    "--socket", "\(dir)/control.sock", "--log-target", "stderr",
                ] + extra, log: "\(dir)/\(log)")
        }

        func control(_ members: [(key: String, value: JSONValue)]) throws -> JSONValue {
            try ControlClient.send(.object(members), socket: "\(dir)/control.sock")
        }

        var log: String { TestFiles.read("\(dir)/daemon.log") ?? "" }

        /// The state the daemon saved last (nil while there is none).
        func savedState() -> EngineState? { (try? StateStore(directory: "\(dir)/state").load()) ?? nil }

        /// Polls without blocking a thread (the tests share the cooperative pool, two threads on two cores, with
        /// every other suite); a timeout shows the daemon's log.
        func waitFor(_ what: String, seconds: Double = generousWait, _ condition: () -> Bool) async throws {
            let logPath = "\(dir)/daemon.log"
            try await waitUntil(
                what, seconds: seconds, every: .milliseconds(100),
                explain: { "daemon log:\n" + (TestFiles.read(logPath) ?? "") }
            ) { condition() }
        }

        func current() -> String { TestFiles.readLink("\(dir)/current") ?? "" }

        func deploy(_ v: String) {
            _ = symlink("\(dir)/releases/\(v)", "\(dir)/current.new")
            _ = rename("\(dir)/current.new", "\(dir)/current")
        }

        /// kill -9 and reap one of ours. Reaped processes leave the scene: with pid_max 32768 a reaped pid is soon
        /// another process (a container's systemd-nspawn, say), and must never be signalled again.
        func killAndReap(_ pid: pid_t) {
            guard let i = children.firstIndex(where: { $0.pid == pid }) else { return }
            let child = children.remove(at: i)
            kill(pid, SIGKILL)
            _ = child.waitExit(timeout: .seconds(60))
        }

        deinit {
            for c in children { c.stop() }
        }
    }

    @Test func aBadReleaseIsRolledBackVerifiedAndReported() async throws {
        let s = try Scene()
        try await s.startService()
        try s.startDaemon()
        try await s.waitFor("v1 known-good") { s.log.contains("Release v1 is known-good") }
        s.deploy("v2")
        try await s.waitFor("the rollback to v1") { s.current().hasSuffix("/releases/v1") }
        try await s.waitFor("verification") { s.log.contains("verification_passed") }
        // Exactly one rollback; the incident report is on disk; the state remembers v2 as rolled back from.
        #expect(s.log.components(separatedBy: "rollback_started").count - 1 == 1)
        try await s.waitFor("the closed incident saved") {
            (try? StateStore(directory: "\(s.dir)/state").load())??.incidents.first?.outcome == .rolledBack
        }
        let state = try #require(try StateStore(directory: "\(s.dir)/state").load())
        #expect(state.ledger.release("v2")?.rolledBackFromAt != nil)
        let incident = try #require(state.incidents.first)
        #expect(incident.outcome == .rolledBack)
        #expect(FileIO.exists("\(s.dir)/state/incidents/\(incident.id).md"))
        // The control socket reports it.
        let status = try s.control([("command", .string("status"))])
        #expect(status["report"]?["current"] == .string("v1"))
        #expect(status["report"]?["knownGood"] == .string("v1"))
        #expect(status["report"]?["version"] == .string(RollbackVersion.current))
        guard case let .string(text)? = status["text"] else { throw TestFailure("status has no text: \(status)") }
        #expect(text.hasPrefix("demo: ") && text.contains(" (rollbackd \(RollbackVersion.current))\n"), "\(text)")
        // A manual rollback back to the release rolled back from is refused, through the CLI.
        let refused = try await runRollbackd(["rollback", "--to", "v2", "--socket", "\(s.dir)/control.sock"])
        #expect(refused.termination == .exited(1))
        #expect(refused.stderrText.contains("v2 was rolled back from"), "\(refused.stderrText)")
    }

    @Test func invalidReloadKeepsTheLastGoodConfigAndKill9Resumes() async throws {
        let s = try Scene()
        try await s.startService()
        let daemon = try s.startDaemon()
        try await s.waitFor("the first tick") { s.log.contains("release_deployed") }
        // An invalid file on disk: rejected, the daemon keeps running the old table.
        try FileIO.writeAtomically(
            path: "\(s.dir)/thresholds.json", bytes: Array(#"{"service": "demo", "interval": "1x"}"#.utf8), mode: 0o644)
        try await s.waitFor("config_rejected") { s.log.contains("config_rejected") }
        #expect(s.log.contains("interval: \"1x\" is not a duration"))
        // SIGHUP with a valid one: loaded.
        try s.writeConfig(interval: "1s")
        kill(daemon, SIGHUP)
        try await s.waitFor("config reloaded") { s.log.contains("Configuration reloaded") }
        // The pause command is an event naming the caller.
        let paused = try s.control([("command", .string("pause")), ("for", .string("1s"))])
        #expect(paused["ok"] == .bool(true))
        try await s.waitFor("pause event") { s.log.contains("uid \(getuid()) paused automation") }
        // kill -9, restart: the state (known-good v1) survives and nothing is rolled back. The daemon logs "known-good"
        // before it saves the state of that tick, and the restarted daemon answers status from the saved state until
        // its first tick is done: so the kill comes once the saved state says v1 is known-good.
        try await s.waitFor("v1 known-good") { s.log.contains("Release v1 is known-good") }
        try await s.waitFor("v1 known-good in the saved state") {
            s.savedState()?.ledger.release("v1")?.isKnownGood == true
        }
        s.killAndReap(daemon)
        try s.startDaemon()
        try await s.waitFor("restart") { s.log.components(separatedBy: "rollbackd started").count - 1 == 2 }
        let status = try s.control([("command", .string("status"))])
        #expect(status["report"]?["knownGood"] == .string("v1"))
        #expect(!s.log.contains("rollback_started"))
    }
}
