import Testing
import RollbackCore
import RollbackSystem
import TestSupport

/// `rollbackd check`, the real binary, on the shipped table and on the broken-config corpus.
@Suite struct CheckCommandTests {
    /// expected.json lists every file of the corpus and nothing else.
    @Test func corpusIsComplete() {
        let listed = Fixtures.broken.map(\.path)
        #expect(listed.count >= 25, "broken/expected.json lists \(listed.count) files")
        #expect(Set(listed) == Set(Fixtures.jsonFiles(in: Fixtures.brokenDir)))
        #expect(Set(listed).count == listed.count)
    }

    /// Exit 1, nothing on stdout, and stderr names the file, the JSON path and what is wrong.
    @Test(arguments: Fixtures.broken)
    func rejectsBrokenFile(_ entry: Fixtures.Broken) async throws {
        let r = try await runRollbackd(["check", entry.path])
        #expect(r.termination == .exited(1), "\(entry.file): \(r.termination)")
        #expect(r.stdoutText.isEmpty, "\(entry.file) printed a table: \(r.stdoutText)")
        #expect(r.stderrText.contains(entry.error), "\(entry.file): expected \(entry.error)\nstderr: \(r.stderrText)")
        #expect(r.stderrText.hasPrefix(entry.path + ": "), "\(entry.file): every error line starts with the file")
    }

    @Test func printsTheEightRowTableOfTheShippedFile() async throws {
        let r = try await runRollbackd(["check", Fixtures.shipped])
        #expect(r.termination == .exited(0), "\(r.stderrText)")
        #expect(r.stderrText.isEmpty, "warnings for the shipped table: \(r.stderrText)")
        let lines = r.stdoutText.split(separator: "\n").map(String.init)
        #expect(lines.count == 10, "\(r.stdoutText)") // summary, header, eight rows
        #expect(lines.first?.hasPrefix("service example-api: interval 5s") == true)
        #expect(lines.count > 1 && lines[1].hasPrefix("TRIGGER") && lines[1].contains("RESPOND WITHIN"))
        let names = [
            "critical-error-rate", "latency-degradation", "health-check-failure", "business-metric-drop",
            "security-incident", "data-corruption", "performance-regression", "feature-regression",
        ]
        for (i, name) in names.enumerated() where i + 2 < lines.count {
            #expect(lines[i + 2].hasPrefix(name + " "), "row \(i + 1): \(lines[i + 2])")
        }
        #expect(
            lines.count > 2 && lines[2].contains("error_rate > 10%") && lines[2].contains("critical")
                && lines[2].contains("full"))
    }

    @Test func printsTheTableAsJSON() async throws {
        let r = try await runRollbackd(["check", "--json", Fixtures.shipped])
        #expect(r.termination == .exited(0), "\(r.stderrText)")
        let root = try JSONParser.parse(r.stdoutText)
        guard case let .array(triggers)? = root["triggers"] else {
            Issue.record("no triggers array: \(r.stdoutText)")
            return
        }
        #expect(triggers.count == 8)
        #expect(root["service"] == .string("example-api"))
        #expect(triggers.first?["name"] == .string("critical-error-rate"))
        #expect(triggers.first?["automation"] == .string("full"))
        #expect(triggers.first?["detectionSeconds"] == .number(5)) // evidence: at the first tick with enough counts
        #expect(triggers.first?["decidesBy"] == .string("evidence: error_rate > 10% at 99%"))
        #expect(triggers.first?["respondWithinSeconds"] == .number(120))
    }

    @Test(arguments: [
        ["check", "--no-such-flag", "thresholds.json"], ["check", "a.json", "b.json"], ["no-such-command"],
    ])
    func exitsTwoOnUsageErrors(_ arguments: [String]) async throws {
        let r = try await runRollbackd(arguments)
        #expect(r.termination == .exited(2), "\(arguments): \(r.termination) \(r.stderrText)")
        #expect(!r.stderrText.isEmpty)
        #expect(r.stdoutText.isEmpty)
    }

    @Test func exitsOneForAnUnreadableFile() async throws {
        let r = try await runRollbackd(["check", "/nonexistent/thresholds.json"])
        #expect(r.termination == .exited(1))
        #expect(r.stderrText.hasPrefix("/nonexistent/thresholds.json: cannot read"))
    }

    /// Semantic warnings: exit 0, the table on stdout, each warning a `warning: file: path: message` line.
    @Test func printsWarningsAndExitsZero() async throws {
        let slow = Fixtures.dir + "/warnings/slow-detection.json"
        var r = try await runRollbackd(["check", slow])
        #expect(r.termination == .exited(0))
        #expect(
            r.stderrText
                == "warning: \(slow): triggers[0].breaches: detection takes 2m30s (interval 5s × 30 breaches), longer than respondWithin 2m\n"
        )
        #expect(r.stdoutText.contains("2m30s (30×5s)"))

        let capped = Fixtures.dir + "/warnings/capped.json"
        r = try await runRollbackd(["check", capped])
        #expect(r.termination == .exited(0))
        let warnings = r.stderrText.split(separator: "\n")
        #expect(warnings.count == 2)
        #expect(
            warnings.allSatisfy {
                $0.hasPrefix("warning: \(capped): triggers[")
                    && $0.hasSuffix("automation: full is capped to manual by the top-level automation")
            })
        #expect(r.stdoutText.contains("manual (capped from full)"))
    }

    /// Every strategy and every key, accepted without a warning.
    @Test(arguments: Fixtures.jsonFiles(in: RepoPaths.root + "/Tests/Fixtures/valid"))
    func acceptsValidFixture(_ path: String) async throws {
        let r = try await runRollbackd(["check", path])
        #expect(r.termination == .exited(0), "\(path): \(r.stderrText)")
        #expect(r.stderrText.isEmpty, "\(path): \(r.stderrText)")
    }

    /// With `telemetry`, the table says where `/metrics` is scraped; without it, nothing (the shipped table).
    @Test func showsTheTelemetryScrapeURL() async throws {
        let file = RepoPaths.root + "/Tests/Fixtures/valid/everything.json"
        let text = try await runRollbackd(["check", file])
        #expect(text.stdoutText.contains("telemetry: /metrics served on http://127.0.0.1:9465/metrics\n"))
        let json = try await runRollbackd(["check", "--json", file])
        #expect(try JSONParser.parse(json.stdoutText)["telemetry"] == .string("http://127.0.0.1:9465/metrics"))
        let shipped = try await runRollbackd(["check", "--json", Fixtures.shipped])
        #expect(try JSONParser.parse(shipped.stdoutText)["telemetry"] == .null)
    }
}
