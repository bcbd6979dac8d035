import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

extension DaemonTests {
    /// The soak's false trip (docs/benchmarks.md), with a real stall: the daemon guards two demo-service instances
    /// with a health probe whose trigger decides on evidence. While a good release is live both instances are
    /// stopped with SIGSTOP, so every probe of a tick times out together, as when the watchdog's own host or network
    /// stalls: that is blind (`source_blind`), never a trigger firing or a rollback. Then a bad release whose
    /// `/healthz` answers 503 at once is deployed: it still fires and is rolled back.
    @Test func aStallOfEveryProbeIsBlindButABadReleaseStillFires() async throws {
        let s = try Scene()
        for (v, healthy) in [("v3", true), ("v4", false)] {
            try FileIO.makeDirectories("\(s.dir)/releases/\(v)")
            try FileIO.writeAtomically(
                path: "\(s.dir)/releases/\(v)/release.json",
                bytes: Array(#"{"version": "\#(v)", "errorRate": 0, "latencyMs": 2, "healthy": \#(healthy)}"#.utf8),
                mode: 0o644)
        }
        let ports = [unusedPort(), unusedPort()]
        let config = """
            {"service": "demo", "interval": "500ms", "instances": [\(ports.map { "\"http://127.0.0.1:\($0)\"" }.joined(separator: ", "))],
             "metrics": {"health": {"type": "probe", "path": "/healthz", "measure": "unhealthyRatio", "timeout": "1s"}},
             "triggers": [{"name": "instances-down", "metric": "health", "condition": {"above": 0.3}, "confidence": 0.99,
                           "severity": "critical", "respondWithin": "2m", "automation": "full"}],
             "rollback": {"strategy": "symlink", "symlink": {"releasesDir": "\(s.dir)/releases", "currentLink": "\(s.dir)/current"}},
             "safety": {"cooldown": "0s", "soak": "2s", "verifyFor": "3s", "deployWindow": "10m", "baselineWindow": "1m",
                        "blindAfter": 3}}
            """
        try FileIO.writeAtomically(path: "\(s.dir)/thresholds.json", bytes: Array(config.utf8), mode: 0o644)
        var services: [pid_t] = []
        for (i, port) in ports.enumerated() {
            services.append(
                try s.spawn(
                    [RepoPaths.demoService, "--port", String(port), "--release-dir", "\(s.dir)/current"],
                    log: "\(s.dir)/service-\(i).log"))
        }
        defer { for pid in services { kill(pid, SIGCONT) } }
        for port in ports {
            let url = "http://127.0.0.1:\(port)/healthz"
            try await waitUntil("the demo service to answer \(url)") {
                (try? await HTTPClient.shared.send(.get(url, options: patientHTTP())).get().status) == 200
            }
        }
        try s.startDaemon()
        try await s.waitFor("v1 known-good") { s.log.contains("Release v1 is known-good") }
        s.deploy("v3")
        try await s.waitFor("v3 live") { s.log.contains("Release v3 is live") }

        // The stall: both instances stop answering at once, for longer than blindAfter ticks.
        for pid in services { #expect(kill(pid, SIGSTOP) == 0) }
        try await s.waitFor("the blind event") {
            s.log.contains("source_blind")
                && s.log.contains("blind: no target answered within 1s: 2 of 2 targets silent")
        }
        for pid in services { kill(pid, SIGCONT) }
        try await s.waitFor("data again") { s.log.contains("health has data again") }
        #expect(!s.log.contains("trigger_firing"), "\(s.log)")
        #expect(!s.log.contains("rollback_started"), "\(s.log)")
        #expect(s.current().hasSuffix("/releases/v3"))

        // A bad release whose health check fails fast (503s, not silence) is still seen and rolled back.
        s.deploy("v4")
        try await s.waitFor("the rollback away from v4") {
            s.log.contains("rollback_finished") && !s.current().hasSuffix("/releases/v4")
        }
        #expect(s.log.contains("Trigger instances-down is firing"), "\(s.log)")
        #expect(s.log.components(separatedBy: "rollback_started").count - 1 == 1, "\(s.log)")
        try await s.waitFor("v4 saved as rolled back from") {
            s.savedState()?.ledger.release("v4")?.rolledBackFromAt != nil
        }
    }
}
