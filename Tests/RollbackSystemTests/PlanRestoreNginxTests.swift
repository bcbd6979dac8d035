#if canImport(Glibc)
import Glibc
#endif
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

/// A restore schedule on an nginx-blue-green step, against a real nginx (Debian's): blue runs the bad release and
/// takes the requests; the rollback routes to green (blue out), then gives blue 10 % -> 50 % -> 100 % of the
/// requests back, each hold watched by the configured trigger, while an independent client (fixture.py client)
/// requests through nginx the whole time; a `kill -9` of rollbackd in the middle of stage 50 % resumes there.
@Suite struct PlanRestoreNginxTests {
    struct Setup {
        let dir: ScratchDir
        let reaper: Reaper
        let blue: ServerProcess
        let green: ServerProcess
        let nginx: NginxInstance
        /// While this file exists the trigger `errors` breaches (its command exits 1).
        var bad: String { dir.sub("bad") }
        /// One line per sample of the trigger's metric (taken during the holds): the weight of blue's server in the
        /// include file, then how many requests blue and green had answered (each server's own count).
        var holdLog: String { dir.sub("hold.log") }

        static func start(_ dir: ScratchDir) async throws -> Setup {
            let blue = try await Fixture.serve(body: "blue")
            let green = try await Fixture.serve(body: "green")
            let reaper = Reaper()
            let colours = NginxBlueGreenStrategy(
                upstreamFile: dir.sub("nginx/upstream.conf"), upstreamName: "app",
                colors: ["blue": [blue.hostPort], "green": [green.hostPort]])
            let initial = NginxBlueGreenExecutor(colours, phaseTimeout: .seconds(60), stateDirectory: dir.sub("x"))
                .upstreamText(colour: "blue")
            let nginx = try await NginxInstance.start(dir: dir, upstream: initial, reaper: reaper)
            return Setup(dir: dir, reaper: reaper, blue: blue, green: green, nginx: nginx)
        }

        func stop() {
            reaper.killAll()
            blue.stop()
            green.stop()
        }

        /// The metric's command (Python, independent of rollbackd): reads blue's weight in the include file and
        /// both servers' counts, appends them to hold.log, and creates `bad` when blue's weight is `troubleAt`.
        func metricScript(troubleAt: Int?) -> String {
            dir.script(
                "errors.sh",
                """
                /usr/bin/python3 - <<'PY'
                import re, urllib.request
                text = open("\(nginx.upstreamFile)").read()
                m = re.search(r"server \(blue.hostPort) weight=(\\d+);", text)
                weight = m.group(1) if m else "out"
                def count(port):
                    return urllib.request.urlopen(f"http://127.0.0.1:{port}/__count", timeout=10).read().decode()
                with open("\(holdLog)", "a") as f:
                    f.write(f"{weight} {count(\(blue.port))} {count(\(green.port))}\\n")
                if weight == "\(troubleAt.map(String.init) ?? "none")":
                    open("\(bad)", "w").close()
                PY
                test ! -e \(bad)
                """)
        }

        /// nginx's reload, through a script that the first time it reloads stage 50 % SIGKILLs the rollbackd
        /// running the plan (a crash in the middle of a stage: the include written, nginx not reloaded).
        var crashingReload: [String] {
            let reload = nginx.base.map { "'\($0)'" }.joined(separator: " ") + " -s reload"
            return [
                dir.script(
                    "reload-crash.sh",
                    """
                    if grep -q 'server \(blue.hostPort) weight=50;' \(nginx.upstreamFile) && [ ! -e \(dir.sub("crashed")) ]; then
                      touch \(dir.sub("crashed")); kill -KILL $PPID; sleep 2
                    fi
                    exec \(reload)
                    """)
            ]
        }

        func config(troubleAt: Int? = nil, crash: Bool = false) -> String {
            func argv(_ a: [String]) -> String { "[" + a.map { JSONValue.quote($0) }.joined(separator: ", ") + "]" }
            return dir.write(
                "thresholds.json",
                """
                {
                  "service": "plan-restore-nginx", "interval": "200ms",
                  "metrics": {"errors": {"type": "command", "argv": ["\(metricScript(troubleAt: troubleAt))"], "value": "exitStatus"}},
                  "triggers": [{"name": "errors", "metric": "errors", "condition": {"above": 0},
                                "severity": "critical", "respondWithin": "immediate", "breaches": 1,
                                "automation": "full"}],
                  "rollback": {"steps": [
                    {"name": "lb", "strategy": "nginx-blue-green",
                     "nginx-blue-green": {"upstreamFile": "\(nginx.upstreamFile)", "upstreamName": "app",
                                          "colors": {"blue": ["\(blue.hostPort)"], "green": ["\(green.hostPort)"]},
                                          "test": \(argv(nginx.base + ["-t", "-q"])),
                                          "reload": \(argv(crash ? crashingReload : nginx.base + ["-s", "reload"]))},
                     "restore": [{"weight": 10, "hold": "3s"}, {"weight": 50, "hold": "3s"}, {"weight": 100, "hold": "2s"}]}
                  ]}
                }
                """)
        }

        func args(_ cfg: String) -> [String] {
            ["run-plan", "--config", cfg, "--to", "green", "--incident", "inc-nginx", "--state-dir", dir.sub("state")]
        }

        /// hold.log as (blue's weight, blue's count, green's count), one per sample.
        var samples: [(weight: String, blue: Int, green: Int)] {
            (TestFiles.read(holdLog) ?? "").split(separator: "\n").compactMap { line in
                let f = line.split(separator: " ").map(String.init)
                guard f.count == 3, let b = Int(f[1]), let g = Int(f[2]) else { return nil }
                return (f[0], b, g)
            }
        }

        /// Blue's weights the holds saw, each once, in order.
        var weightsDuringHolds: [String] {
            var out: [String] = []
            for s in samples where out.last != s.weight { out.append(s.weight) }
            return out
        }

        /// Blue's share of the requests answered between the first and the last sample of each stage.
        var blueShares: [String: Double] {
            var out: [String: Double] = [:]
            for w in weightsDuringHolds {
                let stage = samples.filter { $0.weight == w }
                guard let a = stage.first, let b = stage.last else { continue }
                let blue = b.blue - a.blue, green = b.green - a.green
                if blue + green > 0 { out[w] = Double(blue) / Double(blue + green) }
            }
            return out
        }
    }

    @Test func drainsTheBadColourThenGivesItBackTenFiftyHundredPercent() async throws {
        let dir = try ScratchDir("plan-restore-nginx")
        defer { dir.remove() }
        let s = try await Setup.start(dir)
        defer { s.stop() }
        let cfg = s.config(crash: true)
        let check = try await runRollbackd(["check", cfg])
        #expect(check.succeeded, "\(check.stderrText)")
        #expect(
            check.stdoutText.contains(
                #"  1. "lb" nginx-blue-green, onFailure halt, then restores weights 10 (hold 3s) -> 50 (hold 3s) -> 100 (hold 2s)"#
            ), "\(check.stdoutText)")

        let client = try await Fixture.client(url: "http://127.0.0.1:\(s.nginx.port)/", dir: dir)
        defer { client.process.stop() }
        try await Fixture.waitForCount(s.blue, atLeast: 1, "blue to answer the client through nginx")

        // The first run is killed in stage 50 %'s reload; the second resumes at that stage.
        let first = try await runRollbackd(s.args(cfg))
        #expect(
            first.termination == .signalled(SIGKILL), "\(first.termination) \(first.stdoutText) \(first.stderrText)")
        let crashed = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(crashed.status == .running)
        #expect(
            crashed.completed == ["1.write-upstream", "1.test", "1.reload", "1.verify", "1.restore-10", "1.hold-10"],
            "\(crashed.completed)")
        let r = try await runRollbackd(s.args(cfg))
        #expect(r.succeeded, "\(r.stdoutText) \(r.stderrText)")
        for line in [
            "resuming the interrupted rollback blue -> green (incident inc-nginx) after phase 1.hold-10",
            "phase 6/10 1.hold-10: skipped", "phase 7/10 1.restore-50: completed", "phase 10/10 1.hold-100: completed",
        ] {
            #expect(r.stdoutText.contains(line), "no \(line) in \(r.stdoutText)")
        }
        let journal = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(journal.status == .finished)
        #expect(
            journal.completed == [
                "1.write-upstream", "1.test", "1.reload", "1.verify", "1.restore-10", "1.hold-10", "1.restore-50",
                "1.hold-50", "1.restore-100", "1.hold-100",
            ], "\(journal.completed)")

        // The include file's weights during the holds followed the schedule; at the end blue takes every request.
        #expect(s.weightsDuringHolds == ["10", "50", "100"], "\(TestFiles.read(s.holdLog) ?? "")")
        let final = TestFiles.read(s.nginx.upstreamFile) ?? ""
        #expect(final.contains("server \(s.green.hostPort) down;"), "\(final)")
        #expect(final.contains("server \(s.blue.hostPort) weight=100;"), "\(final)")
        let exec = NginxBlueGreenExecutor(
            NginxBlueGreenStrategy(
                upstreamFile: s.nginx.upstreamFile, upstreamName: "app",
                colors: ["blue": [s.blue.hostPort], "green": [s.green.hostPort]]),
            phaseTimeout: .seconds(60), stateDirectory: dir.sub("x"))
        #expect(try exec.restoredShare(restored: "blue") == 100)
        // The marker keeps naming the colour the rollback routed to.
        #expect(try exec.activeColour() == "green")

        // Blue's share of what the client got grows stage by stage (loose bounds: nginx reloads asynchronously,
        // and old workers finish their requests on the previous weights).
        let shares = s.blueShares
        let s10 = try #require(shares["10"], "\(TestFiles.read(s.holdLog) ?? "")")
        let s50 = try #require(shares["50"], "\(TestFiles.read(s.holdLog) ?? "")")
        let s100 = try #require(shares["100"], "\(TestFiles.read(s.holdLog) ?? "")")
        #expect(s10 < s50 && s50 < s100, "blue's shares: 10 -> \(s10), 50 -> \(s50), 100 -> \(s100)")
        #expect(s10 < 0.35 && s100 > 0.8, "blue's shares: 10 -> \(s10), 50 -> \(s50), 100 -> \(s100)")
        try await Fixture.waitForCount(s.blue, atLeast: try await Fixture.count(s.blue) + 5, "blue to answer again")
        let result = try await Fixture.stop(client)
        #expect(result.failed == 0, "\(result.errors)")
        #expect((result.bodies["green"] ?? 0) > 0 && (result.bodies["blue"] ?? 0) > 0, "\(result.bodies)")
        print(
            "nginx restore: blue's share of the requests during the holds 10 % -> \(Int(s10 * 100)) %, 50 % -> \(Int(s50 * 100)) %, 100 % -> \(Int(s100 * 100)) %; \(result.ok) requests, \(result.failed) failed"
        )
    }

    @Test func aTriggerFiringDuringAHoldTakesTheRestoredColourOutAgain() async throws {
        let dir = try ScratchDir("plan-restore-nginx")
        defer { dir.remove() }
        let s = try await Setup.start(dir)
        defer { s.stop() }
        // The trouble starts once blue is back at 10 % (the metric's command reads it there).
        let cfg = s.config(troubleAt: 10)
        let client = try await Fixture.client(url: "http://127.0.0.1:\(s.nginx.port)/", dir: dir)
        defer { client.process.stop() }
        try await Fixture.waitForCount(s.blue, atLeast: 1, "blue to answer the client through nginx")

        let r = try await runRollbackd(s.args(cfg))
        #expect(r.termination == .exited(1), "\(r.stdoutText) \(r.stderrText)")
        let expected =
            #"phase 1.hold-10: nginx-blue-green: during the hold of stage 1/3 (phase 1.hold-10): trigger errors firing (1); the ramp stopped and "#
            + "\(s.nginx.upstreamFile) routes upstream app to colour green only again (colour blue out)"
        #expect(r.stdoutText.contains(expected), "\(r.stdoutText)")
        let journal = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(journal.status == .failed)
        #expect(journal.failedPhase == "1.hold-10")
        #expect(journal.completed == ["1.write-upstream", "1.test", "1.reload", "1.verify", "1.restore-10"])
        #expect(s.weightsDuringHolds == ["10"], "\(TestFiles.read(s.holdLog) ?? "")")
        // The include routes to green only again, and nginx serves it: green answers, blue does not.
        let exec = NginxBlueGreenExecutor(
            NginxBlueGreenStrategy(
                upstreamFile: s.nginx.upstreamFile, upstreamName: "app",
                colors: ["blue": [s.blue.hostPort], "green": [s.green.hostPort]]),
            phaseTimeout: .seconds(60), stateDirectory: dir.sub("x"))
        #expect(TestFiles.read(s.nginx.upstreamFile) == exec.upstreamText(colour: "green"))
        try await ExecutorNginxTests.waitForTakeover(by: s.green, from: s.blue, total: 0)
        let result = try await Fixture.stop(client)
        #expect(result.failed == 0, "\(result.errors)")
    }
}
