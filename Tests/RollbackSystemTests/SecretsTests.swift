#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
import Testing
import TestSupport

/// Secrets never leave: a whole incident of the real daemon (a bad release detected, rolled back, verified) with a
/// bearer token on the scrape and on the webhook and a Standard Webhooks secret, then every record the incident left
/// is searched for them: the journal entries (every field), the daemon's own output, the incident reports and every
/// other file in the state directory (state, spool), each webhook payload, and `rollbackd status --json` and its text.
@Suite(.serialized) struct SecretsTests {
    static func randomHex(_ n: Int) -> String {
        (0..<n).map { _ in String(UInt8.random(in: 0...255), radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }
            .joined()
    }

    @Test func noSecretInAnyRecordOfAFullIncident() async throws {
        try await Journald.ensure()
        let s = try DaemonTests.Scene()
        let token = "tok-" + Self.randomHex(20)
        let key = (0..<24).map { _ in UInt8.random(in: 0...255) }
        let secretBase64 = Data(key).base64EncodedString()
        let secret = "whsec_" + secretBase64
        try FileIO.writeAtomically(path: "\(s.dir)/token", bytes: Array((token + "\n").utf8), mode: 0o600)
        try FileIO.writeAtomically(path: "\(s.dir)/secret", bytes: Array(secret.utf8), mode: 0o600)
        let receiver = try await Receiver.start(secret: secret, log: "\(s.dir)/received.jsonl")
        let identifier = uniqueIdentifier("rbsecret")
        let json = """
            {"service": "demo", "interval": "1s", "instances": ["http://127.0.0.1:\(s.port)"],
             "metrics": {"error_rate": {"type": "scrape", "path": "/metrics", "measure": "errorRatio", "timeout": "30s",
                                        "bearerTokenFile": "\(s.dir)/token", "counter": "http_requests_total",
                                        "errorLabels": {"code": "5.."}, "window": "3s"}},
             "triggers": [{"name": "errors", "metric": "error_rate", "condition": {"above": 0.1}, "breaches": 3,
                           "clears": 2, "severity": "critical", "respondWithin": "2m", "automation": "full"}],
             "rollback": {"strategy": "symlink", "symlink": {"releasesDir": "\(s.dir)/releases", "currentLink": "\(s.dir)/current"}},
             "safety": {"cooldown": "0s", "soak": "3s", "verifyFor": "6s", "deployWindow": "10m", "baselineWindow": "1m"},
             "notify": {"journal": {"enabled": true, "identifier": "\(identifier)"}, "maxAge": "1h",
                        "webhooks": [{"name": "ops", "url": "\(receiver.base)/ok", "secretFile": "\(s.dir)/secret",
                                      "bearerTokenFile": "\(s.dir)/token", "timeout": "10s"}]}}
            """
        try FileIO.writeAtomically(path: "\(s.dir)/thresholds.json", bytes: Array(json.utf8), mode: 0o644)
        let check = try await runRollbackd(["check", "\(s.dir)/thresholds.json"])
        try #require(check.succeeded, "rollbackd check: \(check.stderrText)")

        try await s.startService()
        try s.spawn(
            [
                RepoPaths.binary, "run", "--config", "\(s.dir)/thresholds.json", "--state-dir", "\(s.dir)/state",
                "--socket", "\(s.dir)/control.sock", "--log-target", "journal",
            ], log: "\(s.dir)/daemon.log")
        try await s.waitFor("v1 known-good") {
            (try? s.control([("command", .string("status"))]))?["report"]?["knownGood"] == .string("v1")
        }
        s.deploy("v2")
        try await s.waitFor("the rollback to v1") { s.current().hasSuffix("/releases/v1") }
        try await s.waitFor("the closed incident saved") {
            s.savedState()?.incidents.first?.outcome == .rolledBack
        }
        let requests = try await receiver.waitFor(.seconds(60)) { got in
            got.contains { $0.type == "rollbackd.incident_closed" }
        }

        // Every record, by where it came from.
        var records: [(source: String, text: String)] = []
        // journald takes the entries in its own time: read once it has the incident's last one.
        let journal = try await waitFor("the incident's last entry in the journal", seconds: generousWait) {
            let j = try await ProcessRunner.run(
                ["journalctl", "-o", "json", "--all", "--no-pager", "SYSLOG_IDENTIFIER=\(identifier)"],
                timeout: .seconds(60))
            return j.stdoutText.contains("\"ROLLBACKD_EVENT\":\"incident_closed\"") ? j : nil
        }
        records.append(("journal", journal.stdoutText))
        records.append(("daemon output", TestFiles.read("\(s.dir)/daemon.log") ?? ""))
        let files = try await ProcessRunner.run(["find", "\(s.dir)/state", "-type", "f"], timeout: .seconds(60))
        let stateFiles = files.stdoutText.split(separator: "\n").map(String.init)
        for file in stateFiles { records.append((file, TestFiles.read(file) ?? "")) }
        for r in requests { records.append(("webhook payload \(r.id) \(r.type ?? "")", r.body.serialized)) }
        let status = try await runRollbackd(["status", "--json", "--socket", "\(s.dir)/control.sock"])
        #expect(status.succeeded, "\(status.stderrText)")
        records.append(("status --json", status.stdoutText))
        let text = try await runRollbackd(["status", "--socket", "\(s.dir)/control.sock"])
        records.append(("status", text.stdoutText))

        // The records are the incident's, and the secrets were in use.
        for kind in ["trigger_firing", "decision", "rollback_finished", "verification_passed", "incident_closed"] {
            #expect(journal.stdoutText.contains("\"ROLLBACKD_EVENT\":\"\(kind)\""), "no \(kind) in the journal")
        }
        #expect(stateFiles.contains { $0.hasSuffix(".md") } && stateFiles.contains { $0.hasSuffix("state.json") })
        #expect(requests.count >= 5 && requests.allSatisfy(\.verified), "\(requests.map { $0.error ?? "ok" })")
        #expect(requests.allSatisfy { $0.authorization == "Bearer \(token)" }, "the webhook token was not sent")

        // And nothing anywhere holds them.
        let needles = [("the bearer token", token), ("the webhook secret", secret), ("its key", secretBase64)]
        for (source, text) in records {
            for (what, needle) in needles {
                #expect(!text.contains(needle), "\(what) is in \(source)")
            }
        }
        print(
            "secrets: searched \(records.count) records (\(stateFiles.count) state files, \(requests.count) payloads)")
    }
}
