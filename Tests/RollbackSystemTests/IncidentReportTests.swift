#if canImport(Glibc)
import Glibc
#endif
@testable import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
import Testing
import TestSupport
import RollbackVersion

@Suite("incident reports")
struct IncidentReportTests {
    static func sampleIncident(id: String = "inc-20261122T135300Z-v2.3.1") -> Incident {
        let t0 = Timestamp(iso8601: "2026-11-22T13:52:45Z")!
        let trip = TripSnapshot(
            trigger: "critical-error-rate", metric: "error_rate", severity: .critical,
            automation: .full, value: 0.142, threshold: 0.1, firstBreachAt: t0,
            trippedAt: t0 + .seconds(15))
        return Incident(
            id: id, service: "example-api", fromVersion: "v2.3.1", toVersion: "v2.3.0",
            openedAt: t0 + .seconds(15), closedAt: t0 + .seconds(15 + 150), status: .closed, outcome: .rolledBack,
            trips: [trip],
            gates: [
                GateResult(gate: "automation", passed: true, detail: "full"),
                GateResult(gate: "deploy_window", passed: true, detail: "v2.3.1 live for 12m (window 2h)"),
                GateResult(gate: "target", passed: true, detail: "v2.3.0 known-good since 13:10 | soaked 30m"),
            ],
            decision: "rollback", decisionReason: "full automation and every gate passed", approver: "uid 1000",
            rollbackStartedAt: t0 + .seconds(16), rollbackFinishedAt: t0 + .seconds(19), verifiedAt: t0 + .seconds(139),
            timeline: [
                TimelineEntry(at: t0, kind: .triggerPending, text: "error_rate 14.2% > 10% (1 of 3)"),
                TimelineEntry(at: t0 + .seconds(15), kind: .triggerFiring, text: "critical-error-rate fired"),
                TimelineEntry(at: t0 + .seconds(15), kind: .decision, text: "roll back v2.3.1 -> v2.3.0"),
                TimelineEntry(at: t0 + .seconds(16), kind: .rollbackStarted, text: "strategy symlink"),
                TimelineEntry(at: t0 + .seconds(19), kind: .rollbackFinished, text: "v2.3.0 live"),
                TimelineEntry(
                    at: t0 + .seconds(139), kind: .verificationPassed, text: "all full triggers clear for 2m"),
                TimelineEntry(at: t0 + .seconds(165), kind: .incidentClosed, text: "rolled back"),
            ])
    }

    static func thresholds() throws -> Thresholds {
        switch ConfigFile.load(path: RepoPaths.root + "/thresholds.json") {
        case let .success(l): return l.thresholds
        case let .failure(e): throw TestFailure("\(e)")
        }
    }

    @Test func writesJSONAndMarkdownIntoTheStateDirectory() throws {
        let scratch = try ScratchDir("rbincident")
        defer { scratch.remove() }
        let dir = scratch.path
        let incident = Self.sampleIncident()
        let paths = try IncidentReportWriter(stateDirectory: dir).write(incident, thresholds: try Self.thresholds())
        #expect(paths.json == dir + "/incidents/inc-20261122T135300Z-v2.3.1.json")
        #expect(paths.markdown == dir + "/incidents/inc-20261122T135300Z-v2.3.1.md")

        let j = try JSONParser.parse(bytes: FileIO.readAll(path: paths.json))
        #expect(j["report"] == .number(1))
        #expect(j["service"] == .string("example-api"))
        #expect(j["rollbackdVersion"] == .string(RollbackVersion.current))
        #expect(j["fromVersion"] == .string("v2.3.1"))
        #expect(j["toVersion"] == .string("v2.3.0"))
        #expect(j["outcome"] == .string("rolled_back"))
        #expect(j["approver"] == .string("uid 1000"))
        #expect(j["durationMs"] == .number(150_000))
        #expect(j["duration"] == .string("2m30s"))
        #expect(j["times"]?["firstBreach"] == .string("2026-11-22T13:52:45.000Z"))
        #expect(j["times"]?["tripped"] == .string("2026-11-22T13:53:00.000Z"))
        #expect(j["times"]?["decision"] == .string("2026-11-22T13:53:00.000Z"))
        #expect(j["times"]?["rollbackStarted"] == .string("2026-11-22T13:53:01.000Z"))
        #expect(j["times"]?["rollbackFinished"] == .string("2026-11-22T13:53:04.000Z"))
        #expect(j["times"]?["verified"] == .string("2026-11-22T13:55:04.000Z"))
        guard case let .array(trips)? = j["trips"], case let .array(gates)? = j["gates"],
            case let .array(timeline)? = j["timeline"]
        else { Issue.record("missing arrays"); return }
        #expect(trips.first?["value"] == .number(0.142))
        #expect(trips.first?["valueText"] == .string("14.2%"))
        #expect(trips.first?["thresholdText"] == .string("10%"))
        #expect(trips.first?["condition"] == .string("error_rate > 10%"))
        #expect(gates.count == 3)
        #expect(timeline.count == 7)

        let md = String(decoding: try FileIO.readAll(path: paths.markdown), as: UTF8.self)
        #expect(md.hasPrefix("# Incident inc-20261122T135300Z-v2.3.1: example-api v2.3.1 → v2.3.0\n"))
        #expect(md.contains("| Outcome | rolled back, verification passed |"))
        #expect(md.contains("| Duration | 2m30s |"))
        #expect(md.contains("| Written by | rollbackd \(RollbackVersion.current) |"))
        #expect(md.contains("| Approver | uid 1000 |"))
        #expect(
            md.contains(
                "| critical-error-rate | error_rate > 10% | 14.2% | 10% | critical | full | 2026-11-22T13:52:45.000Z | 2026-11-22T13:53:00.000Z |"
            ))
        #expect(md.contains("| Rollback finished | 2026-11-22T13:53:04.000Z | +19s |"))
        #expect(md.contains("| Verification | 2026-11-22T13:55:04.000Z | +2m19s |"))
        #expect(md.contains(#"| target | passed | v2.3.0 known-good since 13:10 \| soaked 30m |"#), "pipes are escaped")
        #expect(md.contains("| 2026-11-22T13:53:04.000Z | +19s | rollback_finished | v2.3.0 live |"))
        #expect(md.contains("`rollbackd history --incident inc-20261122T135300Z-v2.3.1`"))
        // Rewriting (the incident moved on) replaces both files atomically.
        var later = incident
        later.approver = nil
        try IncidentReportWriter(stateDirectory: dir).write(later)
        let md2 = String(decoding: try FileIO.readAll(path: paths.markdown), as: UTF8.self)
        #expect(md2.contains("| Approver | none (no approval was involved) |"))
        #expect(
            md2.contains("| 14.2% | 0.1 |") == false && md2.contains("| 0.142 | 0.1 |"),
            "without thresholds, plain numbers")
    }

    @Test func anOpenIncidentReportsWhatIsKnown() throws {
        var i = Self.sampleIncident()
        i.closedAt = nil
        i.status = .awaitingApproval
        i.outcome = nil
        i.toVersion = nil
        i.gates = []
        let md = IncidentReport.markdown(i)
        #expect(md.hasPrefix("# Incident \(i.id): example-api v2.3.1\n"))
        #expect(md.contains("| Outcome | still awaiting approval |"))
        #expect(md.contains("| Duration | ongoing |"))
        #expect(md.contains("No gate was evaluated."))
        #expect(IncidentReport.json(i)["closedAt"] == .null)
    }

    @Test func idsThatCannotNameAFileAreRefused() {
        for bad in ["", "../etc/passwd", ".hidden", "a/b", "inc 1"] {
            #expect(throws: IncidentReportError.self) { try IncidentReportWriter.validate(id: bad) }
        }
        #expect(throws: Never.self) { try IncidentReportWriter.validate(id: "inc-20261122T135300Z-v2.3.1") }
    }
}
