#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
import TestSupport

/// Rollback plans (`rollback.steps`) with real executors: a symlink release, a flags file, config files and
/// commands, run by a real `rollbackd run-plan` (or the daemon's procedure), one journal for the whole plan.
@Suite struct ExecutorPlanTests {
    /// Releases v1 and v2 with `current` on v2, a flags file with `new-checkout` on, and `steps.log`, where every
    /// step's command writes a line saying what it saw (so the order of the steps is on disk).
    struct Layout {
        let dir: ScratchDir
        var log: String { dir.sub("steps.log") }
        var flags: String { dir.sub("flags.json") }

        init(_ dir: ScratchDir) {
            self.dir = dir
            for v in ["v1", "v2"] { dir.write("app/releases/\(v)/VERSION", v) }
            symlink(dir.sub("app/releases/v2"), dir.sub("app/current"))
            dir.write("flags.json", #"{"new-checkout": true, "other": true}"# + "\n")
        }

        /// A script appending `<what> <strategy> <current's target> flag=<on|off>` to steps.log, then `then`.
        func recorder(_ name: String, _ what: String, then: String = "") -> String {
            dir.script(
                name,
                """
                if grep -q '"new-checkout": *false' \(flags); then f=off; else f=on; fi
                echo "\(what) $ROLLBACKD_STRATEGY $(readlink \(dir.sub("app/current"))) flag=$f" >> \(log)
                \(then)
                """)
        }

        var appStep: String {
            """
            {"name": "app", "strategy": "symlink",
             "symlink": {"releasesDir": "\(dir.sub("app/releases"))", "currentLink": "\(dir.sub("app/current"))",
                         "reload": ["\(recorder("app-reload.sh", "reload"))"]}}
            """
        }

        var flagStep: String {
            #"{"name": "flags", "strategy": "feature-flag", "timeout": "10s", "feature-flag": {"flag": "new-checkout", "file": "\#(flags)"}}"#
        }

        func commandStep(_ name: String, _ script: String, onFailure: String = "halt") -> String {
            #"{"name": "\#(name)", "strategy": "command", "onFailure": "\#(onFailure)", "command": {"argv": ["\#(script)"]}}"#
        }

        func config(_ steps: [String]) -> String {
            thresholdsFile(dir, rollback: #"{"steps": [\#(steps.joined(separator: ", "))]}"#)
        }

        func args(_ cfg: String, incident: String = "inc-plan") -> [String] {
            ["run-plan", "--config", cfg, "--to", "v1", "--incident", incident, "--state-dir", dir.sub("state")]
        }

        func lines() -> [String] { (TestFiles.read(log) ?? "").split(separator: "\n").map(String.init) }
    }

    /// A drill rolls forward by running the same steps toward the original release, which does not undo a flag
    /// step (the flag would be switched off twice): `rollbackd drill` refuses that plan, naming the step, and
    /// changes nothing.
    @Test func aDrillOfAPlanWithAFlagStepIsRefusedBeforeAnythingChanges() async throws {
        let dir = try ScratchDir("plan-drill")
        defer { dir.remove() }
        let app = Layout(dir)
        let cfg = app.config([app.appStep, app.flagStep])
        let before = TestFiles.snapshot(dir.path)
        let r = try await runRollbackd(["drill", "--config", cfg, "--to", "v1", "--state-dir", dir.sub("state")])
        #expect(!r.succeeded)
        #expect(
            r.stderrText.contains(
                #"rollback.steps[1], step 2 "flags" (feature-flag), cannot be rehearsed: it switches the flag off, and rolling forward would switch it off again, not back on"#
            ), "\(r.stderrText)")
        #expect(TestFiles.snapshot(dir.path) == before)
    }

    /// A plan whose steps each deploy a release (a symlink and config files) is rehearsed whole: rolled back step
    /// by step, verified, rolled forward step by step to where it was.
    @Test func aDrillRehearsesAPlanOfReversibleSteps() async throws {
        let dir = try ScratchDir("plan-drill")
        defer { dir.remove() }
        let app = Layout(dir)
        _ = ExecutorRunnerTests.configLayout(dir)
        let configStep = """
            {"name": "config", "strategy": "config",
             "config": {"files": ["\(dir.sub("live/app.conf"))"], "directory": "\(dir.sub("releases"))"}}
            """
        let cfg = app.config([app.appStep, configStep])
        dir.write(
            "thresholds.json",
            (TestFiles.read(cfg) ?? "").replacing(#""interval": "5s""#, with: #""interval": "200ms""#))
        let r = try await runRollbackd(
            ["drill", "--config", cfg, "--to", "v1", "--state-dir", dir.sub("state"), "--verify-for", "1s"])
        #expect(r.succeeded, "\(r.stdoutText) \(r.stderrText)")
        for line in [
            "drill ", "rolling back v2 -> v1 with the plan strategy, then forward again",
            "  phase 1/3 1.swap: completed", "  phase 3/3 2.restore: completed",
            "  forward phase 1/3 1.swap: completed", "  forward phase 3/3 2.restore: completed",
            "rolled forward to v2",
        ] {
            #expect(r.stdoutText.contains(line), "no \(line) in \(r.stdoutText)")
        }
        // Back where it was: the release and the config file of v2.
        #expect(TestFiles.readLink(dir.sub("app/current")) == dir.sub("app/releases/v2"))
        #expect(TestFiles.read(dir.sub("live/app.conf")) == "setting = bad\n")
        // Each step ran both ways: the app's reload once back, once forward.
        #expect(app.lines().count == 2, "\(app.lines())")
        let log = try #require(TestFiles.read(dir.sub("state/drills.json")))
        #expect(log.contains(#""outcome" : "verified""#), "\(log)")
    }

    @Test func aThreeStepPlanRunsInOrderAndJournalsEveryPhase() async throws {
        let dir = try ScratchDir("plan")
        defer { dir.remove() }
        let app = Layout(dir)
        let cfg = app.config([app.appStep, app.flagStep, app.commandStep("purge", app.recorder("purge.sh", "purge"))])

        let check = try await runRollbackd(["check", cfg])
        #expect(check.succeeded, "\(check.stderrText)")
        #expect(check.stdoutText.contains("rollback plan of 3 steps (the version from step 1):"), "\(check.stdoutText)")
        #expect(check.stdoutText.contains(#"  1. "app" symlink, onFailure halt"#), "\(check.stdoutText)")
        #expect(check.stdoutText.contains(#"  2. "flags" feature-flag, timeout 10s, onFailure halt"#))
        #expect(check.stdoutText.contains(#"  3. "purge" command, onFailure halt"#))

        // The dry run: every step's phases, every step prechecked, nothing changed.
        let before = TestFiles.snapshot(dir.path)
        let plan = try await runRollbackd(["plan", "--config", cfg, "--to", "v1", "--incident", "inc-plan"])
        #expect(plan.succeeded, "\(plan.stdoutText) \(plan.stderrText)")
        for line in [
            "rollback v2 -> v1 with a plan of 3 steps (incident inc-plan):", #"  step 1 "app" (symlink):"#,
            "    1. 1.swap [timeout 1m]: point \(dir.sub("app/current")) at \(dir.sub("app/releases/v1"))",
            "    2. 1.reload [timeout 1m]", #"  step 2 "flags" (feature-flag):"#, "    3. 2.flag-off [timeout 10s]",
            #"  step 3 "purge" (command):"#, "    4. 3.command [timeout 1m]", "precheck: passed",
        ] {
            #expect(plan.stdoutText.contains(line), "no \(line) in \(plan.stdoutText)")
        }
        #expect(TestFiles.snapshot(dir.path) == before, "the dry run changed something")

        let run = try await runRollbackd(app.args(cfg))
        #expect(run.succeeded, "\(run.stdoutText) \(run.stderrText)")
        // In order: the swap and its reload (flag still on), the flag off, then the purge; each command sees its
        // own step's strategy.
        #expect(
            app.lines() == [
                "reload symlink \(dir.sub("app/releases/v1")) flag=on",
                "purge command \(dir.sub("app/releases/v1")) flag=off",
            ], "\(app.lines())")
        #expect(TestFiles.read(app.flags)?.contains(#""other":true"#) == true, "\(TestFiles.read(app.flags) ?? "")")
        let journal = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(journal.status == .finished)
        #expect(journal.completed == ["1.swap", "1.reload", "2.flag-off", "3.command"])
        #expect(
            journal.plan.steps.map(\.label) == [
                #"1 "app" (symlink)"#, #"2 "flags" (feature-flag)"#, #"3 "purge" (command)"#,
            ])
        #expect(journal.plan.phases.map(\.step) == [1, 1, 2, 3])
        let progress = run.stdoutText.split(separator: "\n").filter { $0.hasPrefix("phase ") }
        #expect(
            progress.map {
                String($0.prefix { $0 != ":" }) + ":" + String($0.split(separator: ": ")[1].prefix { $0 != " " })
            }
                == [
                    "phase 1/4 1.swap:started", "phase 1/4 1.swap:completed", "phase 2/4 1.reload:started",
                    "phase 2/4 1.reload:completed", "phase 3/4 2.flag-off:started", "phase 3/4 2.flag-off:completed",
                    "phase 4/4 3.command:started", "phase 4/4 3.command:completed",
                ], "\(progress)")
    }

    @Test func theDryRunPrechecksEveryStep() async throws {
        let dir = try ScratchDir("plan")
        defer { dir.remove() }
        let app = Layout(dir)
        let cfg = app.config([
            app.appStep,
            #"{"name": "flags", "strategy": "feature-flag", "feature-flag": {"flag": "f", "file": "\#(dir.sub("nope/flags.json"))"}}"#,
            app.commandStep("purge", "/bin/true"),
        ])
        let before = TestFiles.snapshot(dir.path)
        let plan = try await runRollbackd(["plan", "--config", cfg, "--to", "v9"])
        #expect(plan.termination == .exited(1))
        let failed = try #require(plan.stdoutText.split(separator: "\n").first { $0.hasPrefix("precheck: FAILED: ") })
        // Both failing steps are named, each with its own reason.
        #expect(failed.contains(#"step 1 "app" (symlink): symlink: "#), "\(failed)")
        #expect(failed.contains(dir.sub("app/releases/v9")), "\(failed)")
        #expect(failed.contains(#"; step 2 "flags" (feature-flag): feature-flag: "#), "\(failed)")
        #expect(failed.contains(dir.sub("nope/flags.json")), "\(failed)")
        #expect(!failed.contains("step 3"), "\(failed)")
        #expect(TestFiles.snapshot(dir.path) == before)
    }

    /// A real crash in the middle step: its validate script SIGKILLs rollbackd the first time. The re-run resumes
    /// at that phase: the completed phases of step 1 and step 2 are not run again; step 3 then runs once.
    @Test func aCrashMidPlanResumesWithoutRepeatingACompletedPhase() async throws {
        let dir = try ScratchDir("plan")
        defer { dir.remove() }
        let app = Layout(dir)
        _ = ExecutorRunnerTests.configLayout(dir)
        let validate = dir.script(
            "validate-crash.sh",
            """
            echo validate >> \(dir.sub("validate.log"))
            if [ ! -e \(dir.sub("crashed")) ]; then touch \(dir.sub("crashed")); kill -KILL $PPID; sleep 2; fi
            """)
        let configStep = """
            {"name": "config", "strategy": "config",
             "config": {"files": ["\(dir.sub("live/app.conf"))", "\(dir.sub("live/extra.conf"))"], "directory": "\(dir.sub("releases"))",
                        "validate": ["\(validate)"], "reload": ["\(dir.sub("reload.sh"))"]}}
            """
        let cfg = app.config([app.appStep, configStep, app.commandStep("purge", app.recorder("purge.sh", "purge"))])

        let first = try await runRollbackd(app.args(cfg))
        #expect(
            first.termination == .signalled(SIGKILL), "\(first.termination) \(first.stdoutText) \(first.stderrText)")
        let journal = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(journal.status == .running)
        #expect(journal.completed == ["1.swap", "1.reload", "2.restore"])
        #expect(TestFiles.read(dir.sub("live/app.conf")) == "setting = good\n")
        #expect(app.lines().count == 1, "\(app.lines())")

        // Had step 2's restore run again, it would overwrite this edit.
        dir.write("live/extra.conf", "extra = 1\n# edited after the crash\n")
        let second = try await runRollbackd(app.args(cfg))
        #expect(second.succeeded, "\(second.stdoutText) \(second.stderrText)")
        for line in [
            "resuming the interrupted rollback v2 -> v1 (incident inc-plan) after phase 2.restore",
            "phase 1/6 1.swap: skipped", "phase 2/6 1.reload: skipped", "phase 3/6 2.restore: skipped",
            "phase 4/6 2.validate: completed", "phase 5/6 2.reload: completed", "phase 6/6 3.command: completed",
        ] {
            #expect(second.stdoutText.contains(line), "no \(line) in \(second.stdoutText)")
        }
        #expect(
            TestFiles.read(dir.sub("live/extra.conf")) == "extra = 1\n# edited after the crash\n", "restore ran twice")
        #expect(TestFiles.read(dir.sub("validate.log")) == "validate\nvalidate\n")
        #expect(TestFiles.read(dir.sub("reloads.log")) == "reload\n")
        #expect(
            app.lines() == [
                "reload symlink \(dir.sub("app/releases/v1")) flag=on",
                "purge command \(dir.sub("app/releases/v1")) flag=on",
            ], "step 1's reload ran twice or step 3 did not run once: \(app.lines())")
        let done = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(done.status == .finished)
        #expect(done.completed == ["1.swap", "1.reload", "2.restore", "2.validate", "2.reload", "3.command"])
    }

    @Test func aFailedHaltStepStopsThePlanAndSaysWhatHadRun() async throws {
        let dir = try ScratchDir("plan")
        defer { dir.remove() }
        let app = Layout(dir)
        let migrate = app.recorder("migrate.sh", "migrate", then: "echo 'migration lock held' >&2; exit 3")
        let cfg = app.config([app.appStep, app.commandStep("migrate", migrate), app.flagStep])
        let r = try await runRollbackd(app.args(cfg))
        #expect(r.termination == .exited(1), "\(r.stdoutText) \(r.stderrText)")
        let expected =
            #"rollback v2 -> v1 failed at step 2/3 "migrate" (command), phase 2.command: command: \#(migrate): exit status 3: migration lock held; steps run before it: 1 "app" (symlink) completed; not run: 3 "flags" (feature-flag)"#
        #expect(r.stdoutText.contains(expected), "\(r.stdoutText)")
        // Step 3 never ran: the flag is still on.
        #expect(TestFiles.read(app.flags)?.contains(#""new-checkout": true"#) == true)
        #expect(app.lines().count == 2, "\(app.lines())")
        let journal = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(journal.status == .failed)
        #expect(journal.failedPhase == "2.command")
        #expect(journal.completed == ["1.swap", "1.reload"])
    }

    @Test func aFailedContinueStepIsReportedAndThePlanGoesOn() async throws {
        let dir = try ScratchDir("plan")
        defer { dir.remove() }
        let app = Layout(dir)
        let purge = dir.script("purge-fail.sh", "echo 'cdn: 503' >&2; exit 1")
        let cfg = app.config([app.appStep, app.commandStep("purge", purge, onFailure: "continue"), app.flagStep])
        let r = try await runRollbackd(app.args(cfg))
        #expect(r.succeeded, "\(r.stdoutText) \(r.stderrText)")
        #expect(
            r.stdoutText.contains(
                #"phase 3/4 2.command: failed"#), "\(r.stdoutText)")
        #expect(
            r.stdoutText.contains(
                #"command: \#(purge): exit status 1: cdn: 503 (step 2 "purge" (command) is onFailure continue: the plan goes on)"#
            ), "\(r.stdoutText)")
        #expect(r.stdoutText.contains("phase 4/4 3.flag-off: completed"), "\(r.stdoutText)")
        #expect(
            r.stdoutText.contains(
                #"rollback v2 -> v1 finished, but best-effort step 2 "purge" (command) failed at phase 2.command: command: \#(purge): exit status 1: cdn: 503"#
            ), "\(r.stdoutText)")
        #expect(
            TestFiles.read(app.flags)?.contains(#""new-checkout":false"#) == true, "\(TestFiles.read(app.flags) ?? "")")
        let journal = try #require(try ExecutionRunner.journal(stateDirectory: dir.sub("state")))
        #expect(journal.status == .finished)
        #expect(journal.failedSteps == [2])
        #expect(journal.completed == ["1.swap", "1.reload", "3.flag-off"])
    }

    /// The daemon's own route: the engine orders the rollback, the real procedure runs the plan, a failed halt
    /// step ends the incident `rollback_failed` with the step and what had run, and automation halts.
    @Test func theDaemonHaltsOnAFailedHaltStep() async throws {
        let dir = try ScratchDir("plan-daemon")
        defer { dir.remove() }
        let ok = dir.script("ok.sh", "echo ok >> \(dir.sub("ran.log"))")
        let bad = dir.script("bad.sh", "echo 'flush failed' >&2; exit 2")
        let rollback = """
            {"steps": [{"name": "first", "strategy": "command", "command": {"argv": ["\(ok)"]}},
                       {"name": "cache", "strategy": "command", "command": {"argv": ["\(bad)"]}},
                       {"name": "last", "strategy": "command", "command": {"argv": ["\(ok)"]}}]}
            """
        dir.write(
            "thresholds.json",
            DaemonWorldTests.config.replacing(
                #""rollback": {"strategy": "command", "command": {"argv": ["/bin/false"]}}"#,
                with: #""rollback": "# + rollback), mode: 0o600)
        let config = try RollbackConfig.parse(text: rollback, file: "test")
        let script = DaemonWorldTests.Script()
        let state = dir.sub("state")
        // The scripted world (samples, live version), with the real procedure as its executor.
        var world = script.world()
        world.executeRollback = { order, phase in
            await RollbackProcedure(config, stateDirectory: state).run(order, reporter: PhaseRelay(phase))
        }
        let daemon = try Daemon(
            options: DaemonOptions(
                configPath: dir.sub("thresholds.json"), stateDirectory: state, clock: script.clock),
            makeWorld: { [world] _, _ in world })
        #expect(await daemon.snapshot().config.rollback.steps.count == 3)
        func tick(_ n: Int = 1) async {
            for _ in 0..<n {
                await daemon.tickOnce()
                await daemon.rollbackSettled()
                script.scene.withLock { $0.now = $0.now + .seconds(1) }
            }
        }
        await tick(8)
        script.scene.withLock {
            $0.live = "v2"
            $0.errorRatio = 0.5
        }
        await tick(4)
        let events = script.scene.withLock { $0.events }
        let failed = try #require(events.first { $0.kind == .rollbackFailed }, "\(events.map(\.kind.rawValue))")
        let reason = failed.reason ?? ""
        #expect(
            reason.hasPrefix(
                #"step 2/3 "cache" (command), phase 2.command: command: \#(bad): exit status 2: flush failed; steps run before it: 1 "first" (command) completed; not run: 3 "last" (command)"#
            ), "\(reason)")
        #expect(TestFiles.read(dir.sub("ran.log")) == "ok\n")
        let s = await daemon.snapshot().state
        #expect(s.halted != nil)
        let incident = try #require(s.incident(failed.incident ?? ""), "\(s.incidents.map(\.id))")
        #expect(incident.outcome == .rollbackFailed, "\(incident)")
        let phases = events.filter { $0.kind == .rollbackPhase }.map {
            "\($0.extra["phase"] ?? "?"):\($0.extra["phase_state"] ?? "?")"
        }
        #expect(
            phases == ["1.command:started", "1.command:completed", "2.command:started", "2.command:failed"], "\(phases)"
        )
        // Each phase event names its step; the failure names the step, what had run and what did not, in the
        // journal (ROLLBACKD_STEP…) and in the webhook payload.
        let steps = events.filter { $0.kind == .rollbackPhase }.map { $0.extra["step"] ?? "?" }
        #expect(steps == ["1", "1", "2", "2"], "\(steps)")
        #expect(events.last { $0.kind == .rollbackPhase }?.extra["step_label"] == #"2 "cache" (command)"#)
        let fields = Dictionary(
            JournalFields.fields(for: failed).map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(fields["ROLLBACKD_STEP"] == "2", "\(fields)")
        #expect(fields["ROLLBACKD_STEP_LABEL"] == #"2 "cache" (command)"#)
        #expect(fields["ROLLBACKD_STEPS_RUN"] == #"1 "first" (command)"#)
        #expect(fields["ROLLBACKD_STEPS_NOT_RUN"] == #"3 "last" (command)"#)
        let payload = WebhookPayload.standard(failed, incident: nil, host: "h", service: "s")
        #expect(payload["data"]?["event"]?["extra"]?["steps_run"] == .string(#"1 "first" (command)"#), "\(payload)")
        #expect(payload["data"]?["event"]?["extra"]?["step"] == .string("2"))
    }

    /// A daemon whose plan is app (a command), db (a command with `approval: true`), last; the scripted world's
    /// samples and live version, the real procedure. Ticks until the plan stopped before db.
    struct ApprovalPlan {
        let dir: ScratchDir
        let script = DaemonWorldTests.Script()
        let daemon: Daemon
        var state: String { dir.sub("state") }

        init(_ dir: ScratchDir) throws {
            self.dir = dir
            let log = dir.sub("ran.log")
            func step(_ name: String, approval: Bool = false) -> String {
                let run = dir.script("\(name).sh", "echo \(name) >> \(log)")
                return
                    #"{"name": "\#(name)", "strategy": "command", "approval": \#(approval), "command": {"argv": ["\#(run)"]}}"#
            }
            let rollback = #"{"steps": [\#(step("app")), \#(step("db", approval: true)), \#(step("last"))]}"#
            dir.write(
                "thresholds.json",
                DaemonWorldTests.config.replacing(
                    #""rollback": {"strategy": "command", "command": {"argv": ["/bin/false"]}}"#,
                    with: #""rollback": "# + rollback), mode: 0o600)
            let config = try RollbackConfig.parse(text: rollback, file: "test")
            var world = script.world()
            let state = dir.sub("state")
            world.executeRollback = { order, phase in
                await RollbackProcedure(config, stateDirectory: state).run(order, reporter: PhaseRelay(phase))
            }
            daemon = try Daemon(
                options: DaemonOptions(
                    configPath: dir.sub("thresholds.json"), stateDirectory: state, clock: script.clock),
                makeWorld: { [world] _, _ in world })
        }

        func tick(_ n: Int = 1) async {
            for _ in 0..<n {
                await daemon.tickOnce()
                await daemon.rollbackSettled()
                script.scene.withLock { $0.now = $0.now + .seconds(1) }
            }
        }

        var ran: String { TestFiles.read(dir.sub("ran.log")) ?? "" }
        var events: [Event] { script.scene.withLock { $0.events } }

        /// A full trigger fires on v2; the plan runs app and stops before db. The app step's own release (v1)
        /// then reads as live and the errors clear: neither closes the incident while the step waits.
        func stopBeforeDB() async throws -> String {
            await tick(8)
            script.scene.withLock {
                $0.live = "v2"
                $0.errorRatio = 0.5
            }
            await tick(4)
            let asked = try #require(events.first { $0.kind == .approvalRequested }, "\(events.map(\.kind.rawValue))")
            #expect(asked.extra["step"] == "2")
            #expect(asked.extra["step_label"] == #"2 "db" (command)"#)
            #expect(
                asked.message.contains(
                    #"stopped before step 2 "db" (command), which waits for a person: stopped before step 2/3 "db" (command), which waits for rollbackd approve; steps run before it: 1 "app" (command) completed"#
                ), "\(asked.message)")
            #expect(ran == "app\n")
            script.scene.withLock {
                $0.live = "v1"
                $0.errorRatio = 0.01
            }
            await tick(5)
            #expect(ran == "app\n")
            let s = await daemon.snapshot().state
            let id = try #require(asked.incident)
            #expect(s.incident(id)?.status == .awaitingApproval, "\(String(describing: s.incident(id)))")
            #expect(s.approvals.map(\.planStep) == [2])
            #expect(try ExecutionRunner.journal(stateDirectory: state)?.status == .running)
            return id
        }
    }

    /// `approval: true` on a step: even for a `full` trigger the plan stops before it, the steps before it done;
    /// `rollbackd approve` runs it and the rest of the plan, once.
    @Test func aStepWithApprovalWaitsAndApproveRunsTheRest() async throws {
        let dir = try ScratchDir("plan-approval")
        defer { dir.remove() }
        let plan = try ApprovalPlan(dir)
        let id = try await plan.stopBeforeDB()
        _ = try await plan.daemon.command { engine, now throws(EngineRefusal) in
            try engine.approve(id, by: "alice", now: now)
        }
        await plan.daemon.rollbackSettled()
        #expect(plan.ran == "app\ndb\nlast\n")
        let given = try #require(plan.events.first { $0.kind == .approvalGiven })
        #expect(given.message.hasPrefix(#"alice approved step 2 "db" (command) of the rollback plan v2 -> v1"#))
        #expect(plan.events.contains { $0.kind == .rollbackFinished }, "\(plan.events.map(\.kind.rawValue))")
        let journal = try #require(try ExecutionRunner.journal(stateDirectory: plan.state))
        #expect(journal.status == .finished)
        #expect(journal.completed == ["1.command", "2.command", "3.command"])
        #expect(journal.approvedSteps == [2])
        let s = await plan.daemon.snapshot().state
        #expect(s.incident(id)?.status == .verifying, "\(String(describing: s.incident(id)))")
    }

    /// The privileged executor's last reply line carries a plan stopped before a step, step and all.
    @Test func theExecutorWireCarriesAPlanWaitingForApproval() throws {
        let result = RollbackResult.awaitingApproval(step: 2, #"stopped before step 2/3 "db" (command)"#)
        let line = ExecWire.line(ExecReply.final(result))
        let reply = try #require(ExecWire.decode(ExecReply.self, Array(line.dropLast())))
        #expect(reply.rollbackResult == result)
    }

    /// `rollbackd deny` of the step: nothing more runs, the incident closes denied with an event naming the step
    /// and what had run, and automation halts (the service is part rolled back).
    @Test func denyingTheStepLeavesThePlanHalted() async throws {
        let dir = try ScratchDir("plan-approval")
        defer { dir.remove() }
        let plan = try ApprovalPlan(dir)
        let id = try await plan.stopBeforeDB()
        try await ControlHandler.events(plan.daemon) { engine, now throws(EngineRefusal) in
            try engine.deny(id, by: "bob", now: now)
        }
        await plan.tick(3)
        #expect(plan.ran == "app\n")
        let denied = try #require(plan.events.first { $0.kind == .approvalDenied })
        #expect(
            denied.reason
                == #"bob denied step 2 "db" (command) of the rollback plan v2 -> v1; steps run: 1 "app" (command); not run: 2 "db" (command); 3 "last" (command)"#,
            "\(denied.reason ?? "")")
        #expect(denied.extra["step"] == "2")
        #expect(denied.message.hasSuffix(#"The plan stays halted before step 2 "db" (command)."#))
        let s = await plan.daemon.snapshot().state
        #expect(s.halted != nil)
        #expect(s.incident(id)?.outcome == .denied)
        #expect(try ExecutionRunner.journal(stateDirectory: plan.state)?.completed == ["1.command"])
    }

    /// The live version is the version step's: the first application step by default (not a flag step before it),
    /// or the step marked `version: true`.
    @Test func theVersionComesFromTheVersionStep() async throws {
        let dir = try ScratchDir("plan")
        defer { dir.remove() }
        let app = Layout(dir)
        for v in ["a2", "a3"] { dir.write("assets/releases/\(v)/VERSION", v) }
        symlink(dir.sub("assets/releases/a3"), dir.sub("assets/current"))
        let assets = """
            {"name": "assets", "strategy": "symlink",
             "symlink": {"releasesDir": "\(dir.sub("assets/releases"))", "currentLink": "\(dir.sub("assets/current"))"}}
            """
        let byDefault = app.config([app.flagStep, app.appStep, assets])
        let first = try await runRollbackd(["plan", "--config", byDefault, "--to", "v1"])
        #expect(first.stdoutText.contains("rollback v2 -> v1 with a plan of 3 steps"), "\(first.stdoutText)")
        let check = try await runRollbackd(["check", byDefault])
        #expect(check.stdoutText.contains("rollback plan of 3 steps (the version from step 2):"), "\(check.stdoutText)")

        let marked = app.config([
            app.flagStep, app.appStep,
            assets.replacing(#""name": "assets","#, with: #""name": "assets", "version": true,"#),
        ])
        let second = try await runRollbackd(["plan", "--config", marked, "--to", "a2"])
        #expect(second.stdoutText.contains("rollback a3 -> a2 with a plan of 3 steps"), "\(second.stdoutText)")
        let executor = Executors.make(
            try Thresholds.load(text: try TestFiles.text(marked), file: marked).thresholds.rollback,
            stateDirectory: dir.sub("state"))
        #expect(try await executor.currentVersion() == "a3")
        let reader = VersionReader(source: .strategy, strategy: { try await executor.currentVersion() })
        #expect(await reader.read().version == "a3")
    }
}
