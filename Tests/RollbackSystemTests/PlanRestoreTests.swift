#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

/// Rollback plans that drain traffic first and give it back gradually, against a real HAProxy (Debian's): step 1
/// drains the canary (weight 0), step 2 swaps a symlink release, step 3 switches a flag file off, then step 1's
/// restore schedule gives the canary weights 10 -> 50 -> 100, each hold watched by the configured triggers, while
/// an independent client sends requests through HAProxy the whole time.
@Suite struct PlanRestoreTests {
    struct Setup {
        let dir: ScratchDir
        let reaper: Reaper
        let stable: ServerProcess
        let canary: ServerProcess
        let haproxy: HAProxyInstance
        var flags: String { dir.sub("flags.json") }
        /// While this file exists the trigger `errors` breaches (its command exits 1).
        var bad: String { dir.sub("bad") }
        /// The canary's weight each time rollbackd sampled the trigger's metric (during the holds), one per line,
        /// read on HAProxy's runtime socket by the metric's own command (Python, independent of rollbackd).
        var holdWeights: String { dir.sub("hold-weights.log") }
        /// Written by the test's weight watch once it saw the drain (weight 0) on the runtime socket.
        var drainSeen: String { dir.sub("drain-seen") }

        /// The metric's command: appends `get weight app/canary` to hold-weights.log, exits 1 while `bad` exists;
        /// the trouble starts (it creates `bad`) when it reads weight `troubleAt`.
        func metricScript(troubleAt: Int?) -> String {
            dir.script(
                "errors.sh",
                """
                /usr/bin/python3 - <<'PY'
                import socket
                s = socket.socket(socket.AF_UNIX)
                s.connect("\(haproxy.socket)")
                s.sendall(b"get weight app/canary\\n")
                answer = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
                weight = answer.decode().split()[0]
                with open("\(holdWeights)", "a") as f:
                    f.write(weight + "\\n")
                if weight == "\(troubleAt.map(String.init) ?? "none")":
                    open("\(bad)", "w").close()
                PY
                test ! -e \(bad)
                """)
        }

        /// The weights the holds saw, each once, in order.
        var weightsDuringHolds: [Int] {
            var out: [Int] = []
            for line in (TestFiles.read(holdWeights) ?? "").split(separator: "\n") {
                if let w = Int(line), out.last != w { out.append(w) }
            }
            return out
        }

        /// A shell line for step 2's reload: wait until the test saw the drain on the runtime socket (so that a
        /// busy test process cannot miss weight 0 between two of its reads).
        var waitForDrainSeen: String { "while [ ! -e \(drainSeen) ]; do sleep 0.05; done" }

        static func start(_ dir: ScratchDir) async throws -> Setup {
            for v in ["v1", "v2"] { dir.write("app/releases/\(v)/VERSION", v) }
            symlink(dir.sub("app/releases/v2"), dir.sub("app/current"))
            dir.write("flags.json", #"{"new-checkout": true}"# + "\n")
            let stable = try await Fixture.serve(body: "stable")
            let canary = try await Fixture.serve(body: "canary")
            let reaper = Reaper()
            let haproxy = try await HAProxyInstance.start(
                dir: dir, servers: [("stable", stable.port), ("canary", canary.port)], serverOptions: "weight 100",
                reaper: reaper)
            return Setup(dir: dir, reaper: reaper, stable: stable, canary: canary, haproxy: haproxy)
        }

        func stop() {
            reaper.killAll()
            stable.stop()
            canary.stop()
        }

        /// thresholds.json: the trigger `errors` fires while `bad` exists; the plan's step 2 reloads with `reload`.
        func config(reload: String, troubleAt: Int? = nil) -> String {
            dir.write(
                "thresholds.json",
                """
                {
                  "service": "plan-restore", "interval": "200ms",
                  "metrics": {"errors": {"type": "command", "argv": ["\(metricScript(troubleAt: troubleAt))"], "value": "exitStatus"}},
                  "triggers": [{"name": "errors", "metric": "errors", "condition": {"above": 0},
                                "severity": "critical", "respondWithin": "immediate", "breaches": 1,
                                "automation": "full"}],
                  "rollback": {"steps": [
                    {"name": "lb", "strategy": "haproxy-canary",
                     "haproxy-canary": {"socket": "\(haproxy.socket)", "backend": "app", "canaryServer": "canary",
                                        "mode": "weight"},
                     "restore": [{"weight": 10, "hold": "2s"}, {"weight": 50, "hold": "2s"}, {"weight": 100}]},
                    {"name": "app", "strategy": "symlink", "version": true,
                     "symlink": {"releasesDir": "\(dir.sub("app/releases"))", "currentLink": "\(dir.sub("app/current"))",
                                 "reload": ["\(reload)"]}},
                    {"name": "flags", "strategy": "feature-flag",
                     "feature-flag": {"flag": "new-checkout", "file": "\(flags)"}}
                  ]}
                }
                """)
        }

        func args(_ cfg: String) -> [String] {
            ["run-plan", "--config", cfg, "--to", "v1", "--incident", "inc-restore", "--state-dir", dir.sub("state")]
        }
    }

    /// Reads the canary's weight on HAProxy's runtime socket (`get weight app/canary`: `10 (initial 100)`) every
    /// 20 ms and keeps each change with its monotonic time.
    final class WeightWatch: Sendable {
        let seen = Mutex<[(ms: Int64, weight: Int)]>([])
        let task: Mutex<Task<Void, Never>?> = Mutex(nil)

        /// `drainSeen`: a file written once weight 0 has been read.
        init(socket: String, drainSeen: String) {
            let poll = Task { [self] in
                while !Task.isCancelled {
                    if let answer = try? await HAProxyRuntimeAPI.send(
                        "get weight app/canary", socket: socket, timeout: .seconds(10)),
                        let w = Int(answer.prefix { $0.isNumber })
                    {
                        let changed = seen.withLock { s -> Bool in
                            guard s.last?.weight != w else { return false }
                            s.append((monotonicMs(), w))
                            return true
                        }
                        if changed {
                            if w == 0 {
                                let fd = open(drainSeen, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
                                if fd >= 0 { close(fd) }
                            }
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            task.withLock { $0 = poll }
        }

        var weights: [Int] { seen.withLock { $0.map(\.weight) } }

        func waitFor(_ weight: Int) async throws {
            try await waitUntil("the canary at weight \(weight) on HAProxy's runtime socket (seen \(weights))") {
                weights.last == weight
            }
        }

        func stop() { task.withLock { $0?.cancel() } }
    }

    @Test func drainThenSwapAndFlagThenRestoreWeightsWhileAClientSendsTraffic() async throws {
        let dir = try ScratchDir("plan-restore")
        defer { dir.remove() }
        let s = try await Setup.start(dir)
        defer { s.stop() }
        // Step 2's reload: the first time it SIGKILLs the rollbackd running the plan (a crash in the middle step).
        let reload = dir.script(
            "reload-crash.sh",
            """
            \(s.waitForDrainSeen)
            echo reload >> \(dir.sub("reloads.log"))
            if [ ! -e \(dir.sub("crashed")) ]; then touch \(dir.sub("crashed")); kill -KILL $PPID; sleep 2; fi
            """)
        let cfg = s.config(reload: reload)
        let check = try await runRollbackd(["check", cfg])
        #expect(check.succeeded, "\(check.stderrText)")
        #expect(
            check.stdoutText.contains(
                #"  1. "lb" haproxy-canary, onFailure halt, then restores weights 10 (hold 2s) -> 50 (hold 2s) -> 100"#),
            "\(check.stdoutText)")

        let client = try await Fixture.client(url: "http://127.0.0.1:\(s.haproxy.port)/", dir: dir)
        defer { client.process.stop() }
        try await Fixture.waitForCount(s.canary, atLeast: 1, "the canary to answer the client through haproxy")
        try await Fixture.waitForCount(s.stable, atLeast: 1, "the stable server to answer the client through haproxy")
        let weights = WeightWatch(socket: s.haproxy.socket, drainSeen: s.drainSeen)
        defer { weights.stop() }
        try await weights.waitFor(100)

        let first = try await runRollbackd(s.args(cfg))
        #expect(
            first.termination == .signalled(SIGKILL), "\(first.termination) \(first.stdoutText) \(first.stderrText)")
        let crashed = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(crashed.status == .running)
        #expect(crashed.completed == ["1.drain", "1.confirm", "2.swap"])
        #expect(weights.weights.last == 0, "\(weights.weights)")
        let canaryAtDrain = try await Fixture.count(s.canary)

        let second = try await runRollbackd(s.args(cfg))
        #expect(second.succeeded, "\(second.stdoutText) \(second.stderrText)")
        for line in [
            "resuming the interrupted rollback v2 -> v1 (incident inc-restore) after phase 2.swap",
            "phase 1/10 1.drain: skipped", "phase 2/10 1.confirm: skipped", "phase 3/10 2.swap: skipped",
            "phase 4/10 2.reload: completed", "phase 5/10 3.flag-off: completed",
            "phase 6/10 1.restore-10: completed", "phase 7/10 1.hold-10: completed",
            "phase 8/10 1.restore-50: completed", "phase 9/10 1.hold-50: completed",
            "phase 10/10 1.restore-100: completed",
        ] {
            #expect(second.stdoutText.contains(line), "no \(line) in \(second.stdoutText)")
        }
        // No phase ran twice: the journal lists each once, in the plan's order.
        let done = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(done.status == .finished)
        #expect(
            done.completed == [
                "1.drain", "1.confirm", "2.swap", "2.reload", "3.flag-off", "1.restore-10", "1.hold-10",
                "1.restore-50", "1.hold-50", "1.restore-100",
            ], "\(done.completed)")
        #expect(TestFiles.read(dir.sub("reloads.log")) == "reload\nreload\n")
        #expect(TestFiles.read(s.flags)?.contains(#""new-checkout":false"#) == true)

        // The weights HAProxy reported, in order: drained, then the schedule.
        try await weights.waitFor(100)
        // A busy test process may read too late to see a 2 s stage; the holds' own reads (above) see each.
        #expect(weights.weights.isOrdered(along: [100, 0, 10, 50, 100]), "\(weights.weights)")
        #expect(s.weightsDuringHolds == [10, 50], "\(TestFiles.read(s.holdWeights) ?? "")")
        // Traffic is back on the canary: it answers the client again.
        try await Fixture.waitForCount(s.canary, atLeast: canaryAtDrain + 1, "the restored canary to answer again")
        let result = try await Fixture.stop(client)
        #expect(result.failed == 0, "\(result.errors)")
        #expect(result.ok > 0)

        let seen = weights.seen.withLock { $0 }
        let t0 = seen[1].ms
        let timings = seen.dropFirst(2).map {
            "weight \($0.weight) at +\(ValueFormat.trim(Double($0.ms - t0) / 1000))s"
        }
        print(
            "plan restore: drain done (weight 0), then \(timings.joined(separator: ", ")) (the crash and the re-run in between); \(result.ok) requests, \(result.failed) failed"
        )
    }

    @Test func aTriggerFiringDuringAHoldStopsTheRampAndDrainsAgain() async throws {
        let dir = try ScratchDir("plan-restore")
        defer { dir.remove() }
        let s = try await Setup.start(dir)
        defer { s.stop() }
        // The trouble starts once the canary is back at weight 10 (the metric's command reads it there).
        let cfg = s.config(reload: dir.script("reload.sh", s.waitForDrainSeen), troubleAt: 10)
        let client = try await Fixture.client(url: "http://127.0.0.1:\(s.haproxy.port)/", dir: dir)
        defer { client.process.stop() }
        try await Fixture.waitForCount(s.canary, atLeast: 1, "the canary to answer the client through haproxy")
        let weights = WeightWatch(socket: s.haproxy.socket, drainSeen: s.drainSeen)
        defer { weights.stop() }
        try await weights.waitFor(100)

        let r = try await runRollbackd(s.args(cfg))
        #expect(r.termination == .exited(1), "\(r.stdoutText) \(r.stderrText)")
        let expected =
            #"rollback v2 -> v1 failed at step 1/3 "lb" (haproxy-canary), phase 1.hold-10: haproxy-canary: during the hold of stage 1/3 (phase 1.hold-10): trigger errors firing (1); the ramp stopped and app/canary is back at weight 0; steps run before it: 2 "app" (symlink) completed, 3 "flags" (feature-flag) completed"#
        #expect(r.stdoutText.contains(expected), "\(r.stdoutText)")
        try await weights.waitFor(0)
        #expect(weights.weights.isOrdered(along: [100, 0, 10, 0]), "\(weights.weights)")
        #expect(s.weightsDuringHolds == [10], "\(TestFiles.read(s.holdWeights) ?? "")")
        let journal = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(journal.status == .failed)
        #expect(journal.failedPhase == "1.hold-10")
        #expect(journal.completed == ["1.drain", "1.confirm", "2.swap", "2.reload", "3.flag-off", "1.restore-10"])
        let result = try await Fixture.stop(client)
        #expect(result.failed == 0, "\(result.errors)")
    }
}

extension [Int] {
    /// Starts and ends like `schedule` and reads as it in order, perhaps missing stages in between.
    func isOrdered(along schedule: [Int]) -> Bool {
        guard first == schedule.first, last == schedule.last else { return false }
        var rest = schedule[...]
        for w in self {
            guard let i = rest.firstIndex(of: w) else { return false }
            rest = rest[(i + 1)...]
        }
        return true
    }
}
