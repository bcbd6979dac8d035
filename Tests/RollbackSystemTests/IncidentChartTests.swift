import Testing
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The SVG chart of a real incident: a real `rollbackd run` rolls a bad release back, the chart is written beside
/// the report, a real renderer (librsvg's `rsvg-convert`) draws it to PNG, and its markers are the report's times.
@Suite(.serialized) struct IncidentChartTests {
    /// `data-marker="NAME" data-at="ISO"` pairs of the SVG.
    static func markers(_ svg: String) -> [String: String] {
        var out: [String: String] = [:]
        for m in svg.matches(of: /data-marker="([a-z_]+)" data-at="([^"]+)"/) { out[String(m.1)] = String(m.2) }
        return out
    }

    @Test func aRealIncidentsChartRendersAndItsMarkersAreTheReportsTimes() async throws {
        guard let rsvg = program(named: "rsvg-convert") else {
            throw TestFailure("rsvg-convert is not installed (make test-deps installs Debian's librsvg2-bin)")
        }
        let s = try DaemonTests.Scene()
        try await s.startService()
        try s.startDaemon()
        try await s.waitFor("v1 known-good") { s.log.contains("Release v1 is known-good") }
        s.deploy("v2")
        try await s.waitFor("the closed incident saved") {
            s.savedState()?.incidents.first?.outcome == .rolledBack
        }
        let state = try #require(s.savedState())
        let incident = try #require(state.incidents.first)
        let dir = "\(s.dir)/state/incidents"
        let svgPath = "\(dir)/\(incident.id).svg"
        // The report of the closed incident is written after its chart, and links it.
        try await s.waitFor("the report linking the chart") {
            (TestFiles.read("\(dir)/\(incident.id).md") ?? "").contains("](\(incident.id).svg)")
                && {
                    guard let text = TestFiles.read("\(dir)/\(incident.id).json"),
                        let doc = try? JSONParser.parse(text), case .string? = doc["closedAt"]
                    else { return false }
                    return true
                }()
        }
        let svg = try TestFiles.text(svgPath)
        #expect(svg.hasPrefix("<?xml") && svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.contains("data-line=\"threshold\"") && svg.contains("data-line=\"metric\""))

        // A real renderer draws it.
        let png = "\(s.dir)/chart.png"
        let r = try await ProcessRunner.run([rsvg, "--format=png", "--output", png, svgPath], timeout: .seconds(60))
        #expect(r.termination == .exited(0), "rsvg-convert: \(r.stderrText)")
        let bytes = try FileIO.readAll(path: png, limit: 16 << 20)
        #expect(bytes.count > 1000 && Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])

        // The markers are the report's own times, and the deploy is when v2 went live.
        let report = try JSONParser.parse(bytes: FileIO.readAll(path: "\(dir)/\(incident.id).json"))
        func time(_ key: String) -> String? {
            if case let .string(t)? = report["times"]?[key] { return t }
            return nil
        }
        let m = Self.markers(svg)
        #expect(m["deploy"] == state.ledger.release("v2")?.liveSince.iso8601)
        #expect(m["first_breach"] != nil && m["first_breach"] == time("firstBreach"))
        #expect(m["trip"] != nil && m["trip"] == time("tripped"))
        #expect(m["rollback"] != nil && m["rollback"] == time("rollbackStarted"))
        #expect(m["verification_end"] != nil && m["verification_end"] == time("verified"))

        // rollbackd history --chart prints the path.
        let h = try await runRollbackd([
            "history", "--incident", incident.id, "--chart", "--state-dir", "\(s.dir)/state",
        ])
        #expect(h.termination == .exited(0) && h.stdoutText == svgPath + "\n", "\(h.stdoutText)\(h.stderrText)")
        let missing = try await runRollbackd([
            "history", "--incident", "INC-none", "--chart", "--state-dir", "\(s.dir)/state",
        ])
        #expect(missing.termination == .exited(1) && missing.stderrText.contains("no chart for incident INC-none"))
    }
}
