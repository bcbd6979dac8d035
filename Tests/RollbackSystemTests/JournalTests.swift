#if canImport(Glibc)
import Glibc
#endif
import Logging
import RollbackCore
@testable import RollbackSystem
import Testing
import TestSupport

@Suite("journald mapping")
struct JournalMappingTests {
    @Test func messageIDsAreStableUniqueAndWellFormed() {
        let ids = EventKind.allCases.map(JournalFields.messageID(for:))
        #expect(Set(ids).count == EventKind.allCases.count)
        for id in ids {
            #expect(id.count == 32)
            #expect(id.allSatisfy { "0123456789abcdef".contains($0) })
        }
        // Spot-check two ids: they are public contracts (catalog, operators' queries) and must never change.
        #expect(JournalFields.messageID(for: .decision) == "8f8f5486dada48ee863088cae33b5979")
        #expect(JournalFields.messageID(for: .rollbackFailed) == "32346cde2457452bbf097d92c88034d3")
        for kind in EventKind.allCases {
            #expect(JournalFields.kind(forMessageID: JournalFields.messageID(for: kind)) == kind)
        }
    }

    @Test func catalogExplainsEveryMessageID() throws {
        let text = String(
            decoding: try FileIO.readAll(path: RepoPaths.root + "/systemd/rollbackd.catalog"), as: UTF8.self)
        let headers = text.split(separator: "\n").filter { $0.hasPrefix("-- ") }.map { String($0.dropFirst(3)) }
        #expect(Set(headers) == Set(EventKind.allCases.map(JournalFields.messageID(for:))))
        #expect(headers.count == EventKind.allCases.count)
        // Every entry says what happened, what to check and what to do.
        let entries = text.components(separatedBy: "\n-- ").dropFirst()
        for entry in entries {
            #expect(entry.contains("Subject: "), "\(entry.prefix(40))")
            #expect(entry.contains("What happened:"), "\(entry.prefix(40))")
            #expect(entry.contains("What to check:"), "\(entry.prefix(40))")
            #expect(entry.contains("What to do:"), "\(entry.prefix(40))")
        }
    }

    @Test(arguments: [(Severity.critical, 2), (.high, 3), (.medium, 4), (.low, 6)])
    func priorityFollowsSeverity(severity: Severity, priority: Int) {
        #expect(JournalFields.priority(for: severity) == priority)
        #expect(JournalFields.severity(forPriority: priority) == severity)
    }

    @Test func fieldsRoundTrip() {
        let e = Event(
            kind: .decision, at: Timestamp(millisecondsSinceEpoch: 1_795_355_978_123),
            message: "Rolling back checkout v2 -> v1: error rate 14% > 10%", severity: .critical,
            incident: "inc-1", trigger: "critical_error_rate", automation: .full, metric: "error_rate",
            value: 0.14, threshold: 0.1, fromVersion: "v2", toVersion: "v1", decision: "rollback",
            reason: "3 consecutive breaches", dryRun: false,
            extra: ["phase": "swap", "callerUid": "1000"])
        let fields = JournalFields.fields(for: e, identifier: "rollbackd", service: "checkout")
        let map = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(map["MESSAGE"] == e.message)
        #expect(map["PRIORITY"] == "2")
        #expect(map["SYSLOG_IDENTIFIER"] == "rollbackd")
        #expect(map["ROLLBACKD_EVENT"] == "decision")
        #expect(map["ROLLBACKD_VALUE"] == "0.14")
        #expect(map["ROLLBACKD_DRY_RUN"] == "0")
        #expect(map["ROLLBACKD_PHASE"] == "swap")
        #expect(map["ROLLBACKD_CALLER_UID"] == "1000")
        for f in fields {
            #expect(f.name.allSatisfy { $0.isUppercase || $0.isNumber || $0 == "_" }, "\(f.name)")
        }
        let back = JournalFields.event(from: map)
        var expected = e
        expected.extra = ["phase": "swap", "caller_uid": "1000"]
        #expect(back == expected)
    }

    @Test func extraKeysNeverShadowNamedFields() {
        #expect(JournalFields.fieldSuffix(forExtraKey: "event") == "EXTRA_EVENT")
        #expect(JournalFields.fieldSuffix(forExtraKey: "fromVersion") == "EXTRA_FROM_VERSION")
        #expect(JournalFields.fieldSuffix(forExtraKey: "phase name!") == "PHASE_NAME")
        #expect(JournalFields.fieldSuffix(forExtraKey: "") == "X")
    }

    @Test func iso8601ParsesWhatItPrints() {
        for _ in 0..<2000 {
            let t = Timestamp(millisecondsSinceEpoch: Int64.random(in: -2_000_000_000_000...8_000_000_000_000))
            #expect(Timestamp(iso8601: t.iso8601) == t, "\(t.iso8601)")
        }
        #expect(Timestamp(iso8601: "2026-11-22T14:53:00+01:00") == Timestamp(iso8601: "2026-11-22T13:53:00Z"))
        #expect(Timestamp(iso8601: "2026-11-22")?.iso8601 == "2026-11-22T00:00:00.000Z")
        #expect(Timestamp(iso8601: "2026-11-22T13:53:00.123456Z")?.iso8601 == "2026-11-22T13:53:00.123Z")
        #expect(Timestamp(iso8601: "22/11/2026") == nil)
        #expect(Timestamp(iso8601: "2026-13-01") == nil)
    }

    @Test func noJournalSocketMeansStderr() {
        #expect(JournalWriter(target: .automatic, socketPath: "/nonexistent/journal/socket").target == .stderr)
        let e = Event(
            kind: .rollbackFailed, at: Timestamp(iso8601: "2026-11-22T13:53:00Z")!,
            message: "phase swap failed", severity: .critical, incident: "inc-9", reason: "ln: no such file")
        let line = JournalWriter.readableLine(JournalFields.fields(for: e))
        #expect(
            line
                == #"2026-11-22T13:53:00.000Z rollbackd CRIT rollback_failed: phase swap failed [incident=inc-9 reason="ln: no such file"]"#
        )
    }
}

@Suite("journald for real", .serialized)
struct JournalSystemTests {
    static func sampleEvents(incident: String) -> [Event] {
        let t0 = Timestamp(iso8601: "2026-11-22T13:50:00Z")!
        return [
            Event(
                kind: .triggerFiring, at: t0, message: "critical_error_rate fired: error_rate 14% > 10%",
                severity: .critical, incident: incident, trigger: "critical_error_rate", automation: .full,
                metric: "error_rate", value: 0.14, threshold: 0.1, fromVersion: "v2.3.1"),
            Event(
                kind: .decision, at: t0 + .seconds(1), message: "rolling back v2.3.1 -> v2.3.0",
                severity: .critical, incident: incident, trigger: "critical_error_rate", automation: .full,
                fromVersion: "v2.3.1", toVersion: "v2.3.0", decision: "rollback",
                reason: "full automation, all gates passed", dryRun: false),
            Event(
                kind: .rollbackFinished, at: t0 + .seconds(4), message: "v2.3.0 is live", severity: .high,
                incident: incident, fromVersion: "v2.3.1", toVersion: "v2.3.0", extra: ["phase": "swap"]),
            Event(kind: .configLoaded, at: t0 + .seconds(5), message: "thresholds.json loaded", severity: .low),
        ]
    }

    @Test func eventsAreJournaledWithTheirFieldsAndReadBack() async throws {
        try await Journald.ensure()
        let identifier = uniqueIdentifier("rbtest")
        let incident = "inc-\(UInt32.random(in: 0...UInt32.max))"
        let journal = EventJournal(identifier: identifier, service: "checkout", writer: JournalWriter(target: .journal))
        for e in Self.sampleEvents(incident: incident) { #expect(journal.record(e) == .journal) }

        let entries = try await journalEntries(["SYSLOG_IDENTIFIER=\(identifier)"], atLeast: 4)
        try #require(entries.count == 4)
        let decision = try #require(entries.first { $0["ROLLBACKD_EVENT"] == "decision" })
        #expect(decision["MESSAGE"] == "rolling back v2.3.1 -> v2.3.0")
        #expect(decision["MESSAGE_ID"] == "8f8f5486dada48ee863088cae33b5979")
        #expect(decision["PRIORITY"] == "2")
        #expect(decision["ROLLBACKD_INCIDENT"] == incident)
        #expect(decision["ROLLBACKD_TRIGGER"] == "critical_error_rate")
        #expect(decision["ROLLBACKD_SEVERITY"] == "critical")
        #expect(decision["ROLLBACKD_AUTOMATION"] == "full")
        #expect(decision["ROLLBACKD_FROM_VERSION"] == "v2.3.1")
        #expect(decision["ROLLBACKD_TO_VERSION"] == "v2.3.0")
        #expect(decision["ROLLBACKD_DECISION"] == "rollback")
        #expect(decision["ROLLBACKD_REASON"] == "full automation, all gates passed")
        #expect(decision["ROLLBACKD_DRY_RUN"] == "0")
        #expect(decision["ROLLBACKD_SERVICE"] == "checkout")
        let firing = try #require(entries.first { $0["ROLLBACKD_EVENT"] == "trigger_firing" })
        #expect(firing["ROLLBACKD_METRIC"] == "error_rate")
        #expect(firing["ROLLBACKD_VALUE"] == "0.14")
        #expect(firing["ROLLBACKD_THRESHOLD"] == "0.1")
        #expect(entries.first { $0["ROLLBACKD_EVENT"] == "config_loaded" }?["PRIORITY"] == "6")

        // The queries operators use: one field, and two fields together.
        let decisions = try await journalEntries(["SYSLOG_IDENTIFIER=\(identifier)", "ROLLBACKD_EVENT=decision"])
        #expect(decisions.count == 1)
        let ofIncident = try await journalEntries(["ROLLBACKD_INCIDENT=\(incident)"], atLeast: 3)
        #expect(ofIncident.count == 3)

        // rollbackd history --json reads the same through sd_journal_open.
        let r = try await runRollbackd(["history", "--json", "--identifier", identifier])
        #expect(r.succeeded, "\(r.stderrText)")
        let doc = try JSONParser.parse(r.stdoutText)
        guard case let .array(incidents)? = doc["incidents"], case let .array(other)? = doc["other"] else {
            Issue.record("history --json: \(r.stdoutText)")
            return
        }
        try #require(incidents.count == 1)
        #expect(incidents[0]["incident"] == .string(incident))
        #expect(incidents[0]["fromVersion"] == .string("v2.3.1"))
        #expect(incidents[0]["toVersion"] == .string("v2.3.0"))
        #expect(incidents[0]["durationMs"] == .number(4000))
        guard case let .array(events)? = incidents[0]["events"] else { Issue.record("no events"); return }
        let readBack = events.compactMap(EventJSON.event(from:))
        let expected = Self.sampleEvents(incident: incident)
        #expect(readBack == Array(expected.prefix(3)))
        #expect(other.compactMap(EventJSON.event(from:)) == [expected[3]])

        // --incident selects one incident; text output is a timeline.
        let only = try await runRollbackd(["history", "--identifier", identifier, "--incident", incident])
        #expect(only.succeeded)
        #expect(only.stdoutText.hasPrefix("incident \(incident): v2.3.1 -> v2.3.0"))
        #expect(only.stdoutText.contains("2026-11-22T13:50:01.000Z  CRIT    decision"))
        #expect(!only.stdoutText.contains("config_loaded"))

        // --since in the future finds nothing.
        let none = try await runRollbackd(["history", "--json", "--identifier", identifier, "--since", "2999-01-01"])
        #expect(none.stdoutText == #"{"version":1,"incidents":[],"other":[]}"# + "\n")
    }

    @Test func catalogTextShowsWithJournalctlX() async throws {
        try await Journald.ensure()
        let identifier = uniqueIdentifier("rbcatalog")
        let journal = EventJournal(identifier: identifier, writer: JournalWriter(target: .journal))
        journal.record(Self.sampleEvents(incident: "inc-cat")[0])
        _ = try await journalEntries(["SYSLOG_IDENTIFIER=\(identifier)"])

        // journalctl -x reads only /var/lib/systemd/catalog/database, so the catalog is installed for real (as a
        // package would) and the machine's previous state is restored afterwards.
        let installed = "/usr/lib/systemd/catalog/rollbackd.catalog"
        let previous = try? FileIO.readAll(path: installed)
        let ours = try FileIO.readAll(path: RepoPaths.root + "/systemd/rollbackd.catalog")
        try FileIO.makeDirectories("/usr/lib/systemd/catalog", mode: 0o755)
        try FileIO.writeAtomically(path: installed, bytes: ours, mode: 0o644)
        defer {
            if let previous {
                try? FileIO.writeAtomically(path: installed, bytes: previous, mode: 0o644)
            } else {
                unlink(installed)
            }
            if previous != ours {
                _ = try? ProcessRunner.runBlocking(
                    ["journalctl", "--update-catalog"], environment: [:], stdin: [], timeout: .seconds(30),
                    maxOutputBytes: 1 << 16
                ).get()
            }
        }
        let update = try await ProcessRunner.run(["journalctl", "--update-catalog"], timeout: .seconds(60))
        #expect(update.succeeded, "\(update.stderrText)")
        let x = try await ProcessRunner.run(
            ["journalctl", "-x", "--no-pager", "SYSLOG_IDENTIFIER=\(identifier)"],
            timeout: .seconds(60))
        #expect(x.stdoutText.contains("critical_error_rate fired: error_rate 14% > 10%"))
        // The subject with the entry's own trigger substituted, and the advice.
        #expect(x.stdoutText.contains("Subject: rollbackd trigger critical_error_rate fired"), "\(x.stdoutText)")
        #expect(x.stdoutText.contains("What to do: follow the decision."))
        #expect(x.stdoutText.contains("Defined-By: rollbackd"))
    }

    @Test func swiftLogGoesToJournald() async throws {
        try await Journald.ensure()
        let identifier = uniqueIdentifier("rblog")
        var logger = Logger(label: "rollbackd.test") { label in
            JournalLogHandler(label: label, identifier: identifier, writer: JournalWriter(target: .journal))
        }
        logger[metadataKey: "tick"] = "42"
        logger.warning("source slow", metadata: ["metricName": "error_rate"])
        logger.debug("not shown at info level")
        logger.error("cannot read state")
        let entries = try await journalEntries(["SYSLOG_IDENTIFIER=\(identifier)"], atLeast: 2)
        #expect(entries.count == 2)
        let warning = try #require(entries.first)
        #expect(warning["MESSAGE"] == "source slow")
        #expect(warning["PRIORITY"] == "4")
        #expect(warning["ROLLBACKD_LOGGER"] == "rollbackd.test")
        #expect(warning["ROLLBACKD_TICK"] == "42")
        #expect(warning["ROLLBACKD_METRIC_NAME"] == "error_rate")
        #expect(warning["CODE_FILE"]?.hasSuffix("JournalTests.swift") == true)
        #expect(entries.last?["PRIORITY"] == "3")
    }

    @Test func withoutJournalTheSameEventsGoToStderr() async throws {
        let scratch = try ScratchDir("rbstderr")
        defer { scratch.remove() }
        let dir = scratch.path
        let config = try writeThresholds(dir: dir, webhooks: [])
        let r = try await runRollbackd([
            "notify-drill", "--config", config, "--state-dir", dir, "--count", "2",
            "--incident", "inc-tty", "--journal", "stderr",
        ])
        #expect(r.succeeded, "\(r.stderrText)")
        let lines = r.stderrText.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(
            lines.first?.contains("rollbackd CRIT decision: notify drill event 1 of 2 for example-api [") == true,
            "\(r.stderrText)")
        #expect(lines.first?.contains("incident=inc-tty") == true)
    }
}
