import Testing
@testable import RollbackCore
@testable import RollbackSystem
import TestSupport

/// `rollbackd sample`, the real binary against a real prometheus_client instance.
@Suite struct SamplingCLITests {
    func config(_ dir: ScratchDir, instance: String) throws -> String {
        let text = """
            {"service": "cli-test", "interval": "1s", "instances": ["\(instance)"],
             "version": {"type": "url", "url": "\(instance)/version", "timeout": "30s"},
             "metrics": {
               "error_rate": {"type": "scrape", "path": "/metrics", "measure": "errorRatio", "timeout": "30s",
                              "counter": "http_requests_total", "errorLabels": {"code": "5.."}},
               "unhealthy": {"type": "probe", "path": "/healthz", "measure": "unhealthyRatio", "timeout": "30s"}
             },
             "triggers": [{"name": "t", "metric": "error_rate", "condition": {"above": 0.1}, "severity": "high",
                           "respondWithin": "5m", "automation": "manual"}],
             "rollback": {"strategy": "command", "command": {"argv": ["/bin/true"]}}}
            """
        let path = dir.path + "/thresholds.json"
        try FileIO.writeAtomically(path: path, bytes: Array(text.utf8))
        return path
    }

    @Test func printsJSONLinesPerMetricAndTick() async throws {
        let app = try await ServerProcess.python("metrics_app.py")
        try await post("\(app.base)/simulate?ok=9&errors=1")
        try await post("\(app.base)/version?v=v7")
        let dir = try ScratchDir("sample")
        defer { dir.remove() }
        let path = try config(dir, instance: app.base)
        // Traffic at 10 % errors all along, made inside the app, so some lands between the two ticks (one second
        // apart) however busy this test process is.
        try await post("\(app.base)/background?ok=18&errors=2&every=0.1")
        let r = try await runRollbackd(["sample", "--config", path, "--count", "2", "--json"])
        #expect(r.termination == .exited(0), "\(r.stderrText)")
        let lines = try r.stdoutText.split(separator: "\n").map { try JSONParser.parse(String($0)) }
        #expect(lines.count == 6)
        #expect(lines[0]["tick"] == .number(1))
        #expect(lines[0]["metric"] == .string("error_rate"))
        #expect(lines[0]["value"] == .null)
        #expect(
            lines[0]["reason"]
                == .string(
                    "collecting a baseline: errorRatio needs two scrapes of a target; the first value comes next tick"))
        #expect(lines[1]["metric"] == .string("unhealthy"))
        #expect(lines[1]["value"] == .number(0))
        #expect(lines[1]["unit"] == .string("ratio"))
        #expect(lines[2]["metric"] == .null)
        #expect(lines[2]["version"] == .string("v7"))
        #expect(lines[3]["tick"] == .number(2))
        #expect(lines[3]["value"] == .number(0.1))
        #expect(lines[3]["reason"] == .null)
    }

    @Test func printsTextAndExitsThreeWhenBlind() async throws {
        let dir = try ScratchDir("sample")
        defer { dir.remove() }
        let port = unusedPort()
        let path = try config(dir, instance: "http://127.0.0.1:\(port)")
        let r = try await runRollbackd(["sample", "--config", path])
        #expect(r.termination == .exited(3))
        let text = r.stdoutText
        #expect(text.hasPrefix("tick 1 at "))
        #expect(
            text.contains(
                "version unknown (cannot read the version: connection refused to http://127.0.0.1:\(port)/version)"))
        #expect(text.contains("\n  error_rate  no data: connection refused to http://127.0.0.1:\(port)/metrics\n"))
        #expect(text.contains("\n  unhealthy   100%\n"))
        #expect(text.contains("    note: connection refused to http://127.0.0.1:\(port)/healthz\n"))
    }

    @Test func rejectsABadConfigOrCount() async throws {
        let r = try await runRollbackd(["sample", "--config", "/nonexistent/thresholds.json"])
        #expect(r.termination == .exited(1))
        #expect(r.stderrText.hasPrefix("/nonexistent/thresholds.json: cannot read: "))
        let r2 = try await runRollbackd(["sample", "--count", "0"])
        #expect(r2.termination == .exited(2))
    }
}
