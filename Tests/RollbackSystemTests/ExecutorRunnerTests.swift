#if canImport(Glibc)
import Glibc
#endif
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

/// Writes a minimal thresholds.json around a `rollback` object, for the CLI.
func thresholdsFile(_ dir: ScratchDir, rollback: String) -> String {
    dir.write(
        "thresholds.json",
        """
        {
          "service": "exec-test", "interval": "5s",
          "metrics": { "m": { "type": "command", "argv": ["/bin/true"], "value": "exitStatus" } },
          "triggers": [ { "name": "t", "metric": "m", "condition": { "above": 0 }, "severity": "low",
                          "respondWithin": "immediate", "breaches": 1, "automation": "manual" } ],
          "rollback": \(rollback)
        }
        """)
}

@Suite struct ExecutorRunnerTests {
    /// config strategy: live files under `live/`, release copies under `releases/<v>/`.
    static func configLayout(_ dir: ScratchDir, validate: String = "exit 0") -> ConfigStrategy {
        dir.write("live/app.conf", "setting = bad\n")
        dir.write("live/extra.conf", "extra = 2\n")
        dir.write("releases/v1/app.conf", "setting = good\n")
        dir.write("releases/v1/extra.conf", "extra = 1\n")
        dir.write("releases/v2/app.conf", "setting = bad\n")
        dir.write("releases/v2/extra.conf", "extra = 2\n")
        let validateScript = dir.script("validate.sh", validate)
        let reload = dir.script("reload.sh", "echo reload >> \(dir.sub("reloads.log"))")
        return ConfigStrategy(
            files: [dir.sub("live/app.conf"), dir.sub("live/extra.conf")], directory: dir.sub("releases"),
            validate: [validateScript], reload: [reload])
    }

    @Test func haltsAtTheFirstFailedPhaseAndSaysWhere() async throws {
        let dir = try ScratchDir("runner")
        defer { dir.remove() }
        let exec = ConfigExecutor(
            Self.configLayout(dir, validate: "echo 'line 3: unknown directive' >&2; exit 4"),
            phaseTimeout: .seconds(60), stateDirectory: dir.sub("state"))
        let outcome = try await runPlan(exec, from: "v2", to: "v1", state: dir.sub("state"))
        guard case let .failed(phase, message) = outcome.status else { Issue.record("\(outcome.summary)"); return }
        #expect(phase == "validate")
        #expect(message.contains("\(dir.sub("validate.sh")): exit status 4: line 3: unknown directive"), "\(message)")
        #expect(
            message.contains("put back the previous \(dir.sub("live/app.conf")), \(dir.sub("live/extra.conf"))"),
            "\(message)")
        // Halted: no reload; the live files are as before the rollback.
        #expect(!FileIO.exists(dir.sub("reloads.log")))
        #expect(TestFiles.read(dir.sub("live/app.conf")) == "setting = bad\n")
        #expect(
            outcome.reports.map { "\($0.phase.name):\($0.state.rawValue)" } == [
                "restore:started", "restore:completed", "validate:started", "validate:failed",
            ])
        let journal = try ExecutionRunner.journal(stateDirectory: dir.sub("state"))
        #expect(journal?.status == .failed)
        #expect(journal?.failedPhase == "validate")
        #expect(journal?.completed == ["restore"])
    }

    @Test func aPhaseThatHangsIsStoppedAtItsTimeout() async throws {
        let dir = try ScratchDir("runner")
        defer { dir.remove() }
        let exec = CommandExecutor(CommandStrategy(argv: [dir.script("hang.sh", "sleep 300")]), phaseTimeout: .ms(400))
        let outcome = try await runPlan(exec, from: "v2", to: "v1", state: dir.sub("state"))
        guard case let .failed(phase, message) = outcome.status else { Issue.record("\(outcome.summary)"); return }
        #expect(phase == "command")
        #expect(message == "command: \(dir.sub("hang.sh")): timed out after 400ms")
        // The phase's own time, from its start to its end: the journal's fsyncs around it may take seconds on a
        // runner whose disk other tests keep busy, and say nothing about how the hanging script was stopped.
        let took = outcome.reports.last?.seconds ?? .infinity
        #expect(took < 120, "took \(took)s: the 300 s script must be stopped near its timeout")
    }

    @Test func aFinishedPlanRunAgainRunsNothing() async throws {
        let dir = try ScratchDir("runner")
        defer { dir.remove() }
        let exec = CommandExecutor(
            CommandStrategy(argv: [dir.script("count.sh", "echo x >> \(dir.sub("count"))")]), phaseTimeout: .seconds(60)
        )
        let first = try await runPlan(exec, from: "v2", to: "v1", state: dir.sub("state"))
        #expect(first.status == .finished)
        let second = try await runPlan(exec, from: "v2", to: "v1", state: dir.sub("state"))
        #expect(second.status == .alreadyFinished)
        #expect(second.reports.map(\.state) == [.skipped])
        #expect(TestFiles.read(dir.sub("count")) == "x\n")
        // A different plan (another incident) is a new rollback.
        let third = try await runPlan(exec, from: "v2", to: "v1", incident: "inc-2", state: dir.sub("state"))
        #expect(third.status == .finished)
        #expect(TestFiles.read(dir.sub("count")) == "x\nx\n")
    }

    @Test func anInterruptedOtherRollbackBlocksANewOne() async throws {
        let dir = try ScratchDir("runner")
        defer { dir.remove() }
        let exec = CommandExecutor(CommandStrategy(argv: ["/bin/true"]), phaseTimeout: .seconds(60))
        let other = ExecutionJournal(
            plan: exec.plan(from: "v3", to: "v2", incident: "old"), status: .running, completed: [],
            startedAt: .init(millisecondsSinceEpoch: 0), updatedAt: .init(millisecondsSinceEpoch: 0), attempt: 1)
        try FileIO.makeDirectories(dir.sub("state"))
        try FileIO.writeAtomically(
            path: dir.sub("state/rollback-journal.json"), bytes: Array(other.json.serialized.utf8))
        #expect(try ExecutionRunner.pending(stateDirectory: dir.sub("state"))?.plan.incident == "old")
        let outcome = try await runPlan(exec, from: "v2", to: "v1", state: dir.sub("state"))
        guard case let .refused(why) = outcome.status else { Issue.record("\(outcome.summary)"); return }
        #expect(
            why.contains(
                "an interrupted rollback v3 -> v2 (incident old, strategy command) stopped before its first phase completed"
            ), "\(why)")
    }

    @Test func theRunnerRefusesWithoutTheLock() async throws {
        let dir = try ScratchDir("runner")
        defer { dir.remove() }
        let exec = CommandExecutor(CommandStrategy(argv: ["/bin/true"]), phaseTimeout: .seconds(60))
        let lock = try RollbackLock.acquire(stateDirectory: dir.sub("state"), holder: "test")
        lock.release()
        let outcome = await ExecutionRunner(executor: exec, stateDirectory: dir.sub("state"))
            .execute(exec.plan(from: "a", to: "b", incident: "i"), holding: lock)
        #expect(outcome.status == .refused("the rollback lock is not held"))
    }

    @Test func onlyOneRollbackAtATime() async throws {
        let dir = try ScratchDir("runner")
        defer { dir.remove() }
        let lock = try RollbackLock.acquire(stateDirectory: dir.sub("state"), holder: "incident inc-1 v2 -> v1")
        do {
            _ = try RollbackLock.acquire(stateDirectory: dir.sub("state"), holder: "second")
            Issue.record("took the lock twice")
        } catch {
            #expect(
                error.description.hasPrefix(
                    "another rollback is in progress (\(dir.sub("state/rollback.lock")) is locked by pid \(getpid()), incident inc-1 v2 -> v1, since 20"
                ), "\(error)")
        }
        // Another process is refused too.
        let cfg = thresholdsFile(dir, rollback: #"{"strategy": "command", "command": {"argv": ["/bin/true"]}}"#)
        let r = try await runRollbackd([
            "run-plan", "--config", cfg, "--from", "v2", "--to", "v1", "--state-dir", dir.sub("state"),
        ])
        #expect(r.termination == .exited(1))
        #expect(r.stderrText.contains("another rollback is in progress"), "\(r.stderrText)")
        lock.release()
        let again = try RollbackLock.acquire(stateDirectory: dir.sub("state"), holder: "third")
        again.release()
    }

    @Test func dryRunChangesNothing() async throws {
        let dir = try ScratchDir("runner")
        defer { dir.remove() }
        for v in ["v1", "v2"] { dir.write("app/releases/\(v)/VERSION", v) }
        symlink(dir.sub("app/releases/v2"), dir.sub("app/current"))
        dir.write("app/reload.sh", "#!/bin/sh\necho reloaded > \(dir.sub("app/reloaded"))\n", mode: 0o755)
        let cfg = thresholdsFile(
            dir,
            rollback: """
                {"strategy": "symlink", "symlink": {"releasesDir": "\(dir.sub("app/releases"))", "currentLink": "\(dir.sub("app/current"))",
                 "reload": ["\(dir.sub("app/reload.sh"))"]}}
                """)
        let before = TestFiles.snapshot(dir.path)
        let plan = try await runRollbackd(["plan", "--config", cfg, "--to", "v1", "--incident", "inc-9"])
        #expect(plan.succeeded, "\(plan.stderrText)")
        #expect(plan.stdoutText.contains("rollback v2 -> v1 with strategy symlink (incident inc-9):"))
        #expect(
            plan.stdoutText.contains(
                "1. swap [timeout 1m]: point \(dir.sub("app/current")) at \(dir.sub("app/releases/v1"))"))
        #expect(plan.stdoutText.contains("2. reload [timeout 1m]: run \(dir.sub("app/reload.sh"))"))
        #expect(plan.stdoutText.contains("(dry run: nothing was changed)"))
        #expect(plan.stdoutText.contains("precheck: passed"))
        let dry = try await runRollbackd([
            "run-plan", "--dry-run", "--config", cfg, "--to", "v1", "--state-dir", dir.sub("state"),
        ])
        #expect(dry.succeeded, "\(dry.stderrText)")
        #expect(dry.stdoutText.contains("(dry run: nothing was changed)"))
        let exec = Executors.make(
            try RollbackConfig.parse(
                text: """
                    {"strategy": "symlink", "symlink": {"releasesDir": "\(dir.sub("app/releases"))", "currentLink": "\(dir.sub("app/current"))"}}
                    """, file: "test"), stateDirectory: dir.sub("state"))
        _ = ExecutionRunner(executor: exec, stateDirectory: dir.sub("state")).dryRun(
            exec.plan(from: "v2", to: "v1", incident: "i"))
        let after = TestFiles.snapshot(dir.path)
        #expect(
            before == after,
            "changed: \(Set(after.map { "\($0.key) \($0.value)" }).symmetricDifference(before.map { "\($0.key) \($0.value)" }))"
        )
        #expect(!FileIO.exists(dir.sub("state")), "a dry run must not even create the state directory")
    }

    /// A real crash: the validate script SIGKILLs rollbackd (its parent) the first time. The journal then says
    /// `restore` completed; the re-run resumes at `validate`, and a third run finds the plan finished.
    @Test func aCrashBetweenPhasesThenARerunConverges() async throws {
        let dir = try ScratchDir("runner")
        defer { dir.remove() }
        _ = Self.configLayout(dir)
        let validate = dir.script(
            "validate-crash.sh",
            """
            echo validate >> \(dir.sub("validate.log"))
            if [ ! -e \(dir.sub("crashed")) ]; then touch \(dir.sub("crashed")); kill -KILL $PPID; sleep 2; fi
            """)
        let cfg = thresholdsFile(
            dir,
            rollback: """
                {"strategy": "config", "phaseTimeout": "60s",
                 "config": {"files": ["\(dir.sub("live/app.conf"))", "\(dir.sub("live/extra.conf"))"], "directory": "\(dir.sub("releases"))",
                            "validate": ["\(validate)"], "reload": ["\(dir.sub("reload.sh"))"]}}
                """)
        let args = [
            "run-plan", "--config", cfg, "--from", "v2", "--to", "v1", "--incident", "inc-crash", "--state-dir",
            dir.sub("state"),
        ]
        let first = try await runRollbackd(args)
        #expect(
            first.termination == .signalled(SIGKILL), "\(first.termination) \(first.stdoutText) \(first.stderrText)")
        let journal = try ExecutionRunner.journal(stateDirectory: dir.sub("state"))
        #expect(journal?.status == .running)
        #expect(journal?.completed == ["restore"])
        #expect(TestFiles.read(dir.sub("live/app.conf")) == "setting = good\n")
        #expect(!FileIO.exists(dir.sub("reloads.log")))

        // Make the restore observable: had it run again, it would overwrite this marker edit.
        dir.write("live/extra.conf", "extra = 1\n# edited after the crash\n")
        let second = try await runRollbackd(args)
        #expect(second.succeeded, "\(second.stdoutText) \(second.stderrText)")
        #expect(
            second.stdoutText.contains(
                "resuming the interrupted rollback v2 -> v1 (incident inc-crash) after phase restore"))
        #expect(second.stdoutText.contains("phase 1/3 restore: skipped"))
        #expect(second.stdoutText.contains("phase 3/3 reload: completed"))
        #expect(
            TestFiles.read(dir.sub("live/extra.conf")) == "extra = 1\n# edited after the crash\n", "restore ran twice")
        #expect(TestFiles.read(dir.sub("reloads.log")) == "reload\n")
        #expect(TestFiles.read(dir.sub("validate.log")) == "validate\nvalidate\n")
        #expect(try ExecutionRunner.journal(stateDirectory: dir.sub("state"))?.status == .finished)

        let third = try await runRollbackd(args)
        #expect(third.succeeded, "\(third.stderrText)")
        #expect(third.stdoutText.contains("had already finished; nothing was run again"), "\(third.stdoutText)")
        #expect(TestFiles.read(dir.sub("reloads.log")) == "reload\n")
    }
}

@Suite struct ExecutorGateTests {
    @Test func backupHookGetsItsNameAndMustSucceed() async throws {
        let dir = try ScratchDir("gates")
        defer { dir.remove() }
        let ok = dir.script(
            "backup.sh",
            "echo \"$ROLLBACKD_BACKUP_NAME $ROLLBACKD_FROM $ROLLBACKD_TO $ROLLBACKD_INCIDENT\" > \(dir.sub("backup.log")); echo /backups/$ROLLBACKD_BACKUP_NAME.tar"
        )
        let at = Timestamp(millisecondsSinceEpoch: 1_795_355_580_123) // 2026-11-22T13:53:00.123Z
        let r = try await BackupHook.run([ok], at: at, from: "v2", to: "v1", incident: "inc-3", timeout: .seconds(60))
        #expect(r.name == "pre-rollback-20261122T135300Z")
        #expect(r.output == "/backups/pre-rollback-20261122T135300Z.tar")
        #expect(TestFiles.read(dir.sub("backup.log")) == "pre-rollback-20261122T135300Z v2 v1 inc-3\n")

        let bad = dir.script("backup-fail.sh", "echo 'pg_dump: connection refused' >&2; exit 2")
        await #expect {
            _ = try await BackupHook.run([bad], at: at, from: "v2", to: "v1", incident: "i", timeout: .seconds(60))
        } throws: { e in
            "\(e)"
                == "backup: the pre-rollback backup pre-rollback-20261122T135300Z failed, so the rollback did not start: \(bad): exit status 2: pg_dump: connection refused"
        }
    }

    @Test func aFailedBackupStopsTheRollbackBeforeAnyPhase() async throws {
        let dir = try ScratchDir("gates")
        defer { dir.remove() }
        for v in ["v1", "v2"] { dir.write("releases/\(v)/VERSION", v) }
        symlink(dir.sub("releases/v2"), dir.sub("current"))
        let bad = dir.script("backup-fail.sh", "echo 'disk full' >&2; exit 1")
        let cfg = thresholdsFile(
            dir,
            rollback: """
                {"strategy": "symlink", "backup": ["\(bad)"],
                 "symlink": {"releasesDir": "\(dir.sub("releases"))", "currentLink": "\(dir.sub("current"))"}}
                """)
        let r = try await runRollbackd(["run-plan", "--config", cfg, "--to", "v1", "--state-dir", dir.sub("state")])
        #expect(r.termination == .exited(1))
        #expect(r.stderrText.contains("the pre-rollback backup pre-rollback-"), "\(r.stderrText)")
        #expect(
            r.stderrText.contains("failed, so the rollback did not start: \(bad): exit status 1: disk full"),
            "\(r.stderrText)")
        #expect(Paths.readLink(dir.sub("current")) == dir.sub("releases/v2"))
        #expect(try ExecutionRunner.journal(stateDirectory: dir.sub("state")) == nil)
    }

    @Test func databaseGateDemotesWhenTheTargetLacksMigrations() async throws {
        let dir = try ScratchDir("gates")
        defer { dir.remove() }
        for m in ["0001_init.up.sql", "0001_init.down.sql", "0002_users.up.sql"] {
            dir.write("releases/v1/db/migrate/\(m)", "--")
        }
        for m in [
            "0001_init.up.sql", "0001_init.down.sql", "0002_users.up.sql", "0003_orders.up.sql", "0003_orders.down.sql",
        ] {
            dir.write("releases/v2/db/migrate/\(m)", "--")
        }
        dir.write("releases/v0/VERSION", "v0")
        symlink(dir.sub("releases/v2"), dir.sub("current"))
        let json = """
            {"strategy": "symlink", "migrationsDir": "db/migrate",
             "symlink": {"releasesDir": "\(dir.sub("releases"))", "currentLink": "\(dir.sub("current"))"}}
            """
        let config = try RollbackConfig.parse(text: json, file: "test")
        let check = try #require(try ReleaseMigrations.check(config, from: "v2", to: "v1"))
        #expect(check.unknownToTarget == ["0003_orders"])
        #expect(check.allowedAutomation(.full, compatible: false) == .semi)
        #expect(check.allowedAutomation(.full, compatible: true) == .full)
        let gate = check.gate(compatible: false)
        #expect(!gate.passed)
        #expect(
            gate.detail.hasPrefix("v1 lacks 1 migration(s) of v2 (0003_orders); automatic rollback demoted to semi"))
        // v2 -> v2's own history and a target with no migrations directory at all.
        #expect(try ReleaseMigrations.check(config, from: "v1", to: "v2")?.targetLacksMigrations == false)
        #expect(
            try ReleaseMigrations.check(config, from: "v2", to: "v0")?.unknownToTarget == [
                "0001_init", "0002_users", "0003_orders",
            ])
        // The current release must have the directory: otherwise the setting points nowhere.
        #expect { _ = try ReleaseMigrations.check(config, from: "v0", to: "v1") } throws: { e in
            "\(e)"
                == "database: \(dir.sub("releases/v0/db/migrate")) (rollback.migrationsDir of the current release v0) is not a directory"
        }
        // The CLI shows the gate with the plan.
        let cfg = thresholdsFile(dir, rollback: json)
        let r = try await runRollbackd(["plan", "--config", cfg, "--to", "v1"])
        #expect(
            r.stdoutText.contains(
                "database: v1 lacks 1 migration(s) of v2 (0003_orders); automatic rollback demoted to semi"),
            "\(r.stdoutText)")
    }

    @Test func gitTagsNewestVersionFirst() async throws {
        let dir = try ScratchDir("gates")
        defer { dir.remove() }
        let repo = dir.mkdirs("repo")
        let env = [
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        ]
        _ = try await ProcessRunner.run(["git", "-C", repo, "init", "-q"], timeout: .seconds(60))
        dir.write("repo/f", "x")
        _ = try await ProcessRunner.run(["git", "-C", repo, "add", "f"], timeout: .seconds(60))
        let c = try await ProcessRunner.run(
            ["git", "-C", repo, "commit", "-qm", "x"], environment: env, timeout: .seconds(60))
        #expect(c.succeeded, "\(c.stderrText)")
        for t in ["v1.2.0", "v1.10.0", "v1.9.1"] {
            _ = try await ProcessRunner.run(["git", "-C", repo, "tag", t], timeout: .seconds(60))
        }
        #expect(try await GitTags.list(repo: repo) == ["v1.10.0", "v1.9.1", "v1.2.0"])
        await #expect { _ = try await GitTags.list(repo: dir.sub("nope")) } throws: { e in
            "\(e)".hasPrefix("git-tags: git -C \(dir.sub("nope")) tag --sort=-version:refname: exit status 128")
        }
    }
}
