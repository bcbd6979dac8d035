#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RollbackCore
@testable import RollbackSystem
import TestSupport

private func t(_ s: Int64) -> Timestamp { Timestamp(millisecondsSinceEpoch: 1_800_000_000_000 + s * 1000) }

@Suite struct SamplingProbeTests {
    @Test func healthyMeansTwoHundredAndTheExpectedBody() async throws {
        let f = try await SharedServers.fault()
        try await putDoc(f, "probe-ok", "{\"status\": \"ok\", \"checks\": {\"db\": \"up\"}}")
        try await putDoc(f, "probe-db-down", "{\"status\": \"ok\", \"checks\": {\"db\": \"down\"}}")
        try await putDoc(f, "probe-html", "<html>maintenance</html>")
        let targets = ["\(f.base)/doc/probe-ok", "\(f.base)/doc/probe-db-down", "\(f.base)/doc/probe-html"]
        let list = targets.map { "\"\($0)\"" }.joined(separator: ",")
        let sampler = Sampler(
            thresholds: try samplingThresholds(
                metrics: """
                    "db": {"type": "probe", "targets": [\(list)], "measure": "unhealthyRatio", "timeout": "60s",
                           "expect": {"jsonField": "checks.db", "equals": "up"}},
                    "text": {"type": "probe", "targets": [\(list)], "measure": "unhealthyRatio", "timeout": "60s",
                             "expect": {"contains": "ok"}}
                    """))
        let tick = await sampler.tick(now: t(0))
        #expect(tick.samples["db"].map { abs(($0.number ?? 0) - 2.0 / 3) < 1e-12 } == true)
        #expect(tick.samples["text"].map { abs(($0.number ?? 0) - 1.0 / 3) < 1e-12 } == true)
        let dbNote = try #require(tick.notes["db"]?.first)
        #expect(dbNote.contains("\(targets[1]): checks.db is \"down\", expected \"up\""))
        #expect(dbNote.contains("the body of \(targets[2]) is not JSON (line 1, column 1: "))
        #expect(
            tick.notes["text"] == [
                "1 of 3 targets unhealthy: the body of \(targets[2]) does not contain \"ok\": \"<html>maintenance</html>\""
            ])
    }

    @Test func errorRatioAndLatencyOverTheWindow() async throws {
        let f = try await SharedServers.fault()
        let closed = "http://127.0.0.1:\(unusedPort())/healthz"
        let slow = "\(f.base)/slow?ms=200"
        let sampler = Sampler(
            thresholds: try samplingThresholds(
                metrics: """
                    "errors": {"type": "probe", "targets": ["\(slow)", "\(closed)"], "measure": "errorRatio", "window": "10s", "timeout": "60s"},
                    "p95": {"type": "probe", "targets": ["\(slow)", "\(closed)"], "measure": "latencyQuantile", "window": "10s", "timeout": "60s"},
                    "down": {"type": "probe", "targets": ["\(closed)"], "measure": "latencyQuantile", "window": "10s", "timeout": "60s"}
                    """))
        // One probe of both targets per tick, shared by the two metrics.
        #expect(sampler.sources.count == 2)
        _ = await sampler.tick(now: t(0))
        let tick = await sampler.tick(now: t(5))
        #expect(tick.samples["errors"] == .value(0.5))
        let p95 = try #require(tick.samples["p95"]?.number)
        #expect(p95 >= 0.19 && p95 < 5, "p95 \(p95)")
        // This tick's measured latencies are its evidence: the one answer took at least 200 ms; the refused probe
        // has no latency and counts for nothing.
        let probes = try #require(tick.histograms["p95"])
        #expect(Counts.slower(than: 0.1, in: probes)?.counts == Counts(events: 1, trials: 1))
        #expect(Counts.slower(than: 30, in: probes)?.counts == Counts(events: 0, trials: 1))
        #expect(
            tick.samples["down"]
                == .noData(
                    reason: "no probe of 1 targets got an answer in the last 10s: connection refused to \(closed)"))
    }

    @Test func smokeChecksListOnlyTheFailures() async throws {
        let f = try await SharedServers.fault()
        let port = unusedPort()
        let lines = await ProbeSource.failures(
            of: ["\(f.base)/status/200", "\(f.base)/status/502", "http://127.0.0.1:\(port)/"],
            options: patientHTTP())
        #expect(lines == ["HTTP 502 from \(f.base)/status/502", "connection refused to http://127.0.0.1:\(port)/"])
    }

    @Test func rawQuantilesInterpolateBetweenRanks() {
        #expect(ProbeSource.quantile(0.5, [3, 1, 2]) == 2)
        #expect(ProbeSource.quantile(0.95, [1, 2, 3, 4, 5]) == 4.8) // rank 3.8 between 4 and 5
        #expect(ProbeSource.quantile(0, [7]) == 7)
        #expect(ProbeSource.quantile(0.5, []) == nil)
    }
}

@Suite struct SamplingCommandTests {
    func run(_ argv: [String], value: String = "stdout", timeout: String = "60s") async throws -> SampleValue? {
        let list = argv.map { JSONValue.quote($0) }.joined(separator: ",")
        let sampler = Sampler(
            thresholds: try samplingThresholds(
                metrics: """
                    "c": {"type": "command", "argv": [\(list)], "value": "\(value)", "timeout": "\(timeout)"}
                    """))
        return await sampler.tick(now: t(0)).samples["c"]
    }

    @Test func theNumberItPrints() async throws {
        #expect(try await run(["/bin/sh", "-c", "echo ' 0.25 '; echo ignored"]) == .value(0.25))
        #expect(
            try await run(["/bin/sh", "-c", "echo many; exit 0"])
                == .noData(reason: "/bin/sh -c 'echo many; exit 0' printed \"many\", not a number"))
        #expect(
            try await run(["/bin/sh", "-c", "echo 1; echo broken >&2; exit 2"])
                == .noData(reason: "/bin/sh -c 'echo 1; echo broken >&2; exit 2' failed: exit status 2: broken"))
    }

    @Test func itsExitStatus() async throws {
        #expect(try await run(["/bin/sh", "-c", "exit 0"], value: "exitStatus") == .value(0))
        #expect(try await run(["/bin/sh", "-c", "exit 3"], value: "exitStatus") == .value(3))
        #expect(
            try await run(["/bin/sh", "-c", "kill -9 $$"], value: "exitStatus")
                == .noData(reason: "/bin/sh -c 'kill -9 $$' was killed by signal 9"))
    }

    @Test func aHangingOrMissingProgramIsNoData() async throws {
        let started = monotonicMs()
        #expect(
            try await run(["/bin/sleep", "300"], value: "exitStatus", timeout: "300ms")
                == .noData(reason: "/bin/sleep 300 timed out after 300ms"))
        // The bound only tells "stopped" from "waited for" (300 s): a loaded machine may take many seconds.
        #expect(
            monotonicMs() - started < 120_000, "a 300 s program must be stopped near its 300 ms timeout, not waited for"
        )
        #expect(
            try await run(["/nonexistent/integrity-check"], value: "exitStatus")
                == .noData(reason: "cannot run /nonexistent/integrity-check: No such file or directory"))
    }
}

@Suite struct SamplingVersionTests {
    @Test func fromAURLAsTextOrJSONField() async throws {
        let f = try await SharedServers.fault()
        try await putDoc(f, "version-text", "  v2.3.1\nbuilt yesterday\n")
        try await putDoc(f, "version-json", "{\"build\": {\"version\": \"2026.11.22-1\", \"number\": 42}}")
        // Each version source with a patient timeout: how long the answer takes is not what is tested.
        func read(_ json: String) async throws -> (String?, String?) {
            let patient = #"{"timeout": "60s", "# + json.dropFirst()
            return try await Sampler(
                thresholds: samplingThresholds(
                    metrics: "\"m\": {\"type\": \"command\", \"argv\": [\"/bin/true\"]}", version: patient)
            ).readVersion()
        }
        #expect(try await read("{\"type\": \"url\", \"url\": \"\(f.base)/doc/version-text\"}") == ("v2.3.1", nil))
        #expect(
            try await read(
                "{\"type\": \"url\", \"url\": \"\(f.base)/doc/version-json\", \"jsonField\": \"build.version\"}") == (
                    "2026.11.22-1", nil
                ))
        #expect(
            try await read(
                "{\"type\": \"url\", \"url\": \"\(f.base)/doc/version-json\", \"jsonField\": \"build.number\"}") == (
                    "42", nil
                ))
        #expect(
            try await read("{\"type\": \"url\", \"url\": \"\(f.base)/doc/version-json\", \"jsonField\": \"tag\"}") == (
                nil, "the version body of \(f.base)/doc/version-json has no field tag"
            ))
        #expect(
            try await read("{\"type\": \"url\", \"url\": \"\(f.base)/status/404\"}") == (
                nil, "cannot read the version: HTTP 404 from \(f.base)/status/404"
            ))
        let port = unusedPort()
        #expect(
            try await read("{\"type\": \"url\", \"url\": \"http://127.0.0.1:\(port)/version\"}") == (
                nil, "cannot read the version: connection refused to http://127.0.0.1:\(port)/version"
            ))
    }

    @Test func fromAFile() async throws {
        let dir = try ScratchDir("version")
        defer { dir.remove() }
        try FileIO.writeAtomically(path: dir.path + "/VERSION", bytes: Array("release-17\n".utf8))
        #expect(await VersionReader(source: .file(dir.path + "/VERSION")).read() == ("release-17", nil))
        try FileIO.writeAtomically(path: dir.path + "/EMPTY", bytes: Array("\n\n".utf8))
        #expect(
            await VersionReader(source: .file(dir.path + "/EMPTY")).read() == (
                nil, "version file \(dir.path)/EMPTY is empty"
            ))
        #expect(
            await VersionReader(source: .file("/nonexistent/VERSION")).read() == (
                nil, "cannot read version file: open /nonexistent/VERSION: No such file or directory"
            ))
    }

    @Test func fromTheStrategyHook() async {
        #expect(await VersionReader(source: .strategy, strategy: { "v9\n" }).read() == ("v9", nil))
        #expect(
            await VersionReader(source: .strategy).read() == (
                nil, "the version comes from the rollback strategy, which is not available here"
            ))
        struct Broken: Error, CustomStringConvertible {
            var description: String { "readlink /srv/app/current: No such file or directory" }
        }
        #expect(
            await VersionReader(source: .strategy, strategy: { throw Broken() }).read() == (
                nil,
                "the rollback strategy cannot tell the version: readlink /srv/app/current: No such file or directory"
            ))
    }
}
