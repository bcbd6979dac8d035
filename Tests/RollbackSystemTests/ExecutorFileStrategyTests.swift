#if canImport(Glibc)
import Glibc
#endif
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

@Suite struct ExecutorCommandTests {
    @Test func succeedsWithTheRollbackEnvironmentAndNoShell() async throws {
        let dir = try ScratchDir("command")
        defer { dir.remove() }
        // An argument with shell metacharacters arrives verbatim: no shell ever sees it.
        let script = dir.script(
            "deploy.sh",
            "printf '%s|%s|%s|%s\\n' \"$1\" \"$ROLLBACKD_FROM\" \"$ROLLBACKD_TO\" \"$ROLLBACKD_INCIDENT\" > \(dir.sub("out"))"
        )
        let exec = CommandExecutor(
            CommandStrategy(argv: [script, "$(touch \(dir.sub("pwned"))); `id`"]), phaseTimeout: .seconds(60))
        try await exec.precheck(target: "v1")
        let outcome = try await runPlan(exec, from: "v2 'x'", to: "v1", incident: "inc;rm", state: dir.sub("state"))
        #expect(outcome.status == .finished, "\(outcome.summary)")
        #expect(TestFiles.read(dir.sub("out")) == "$(touch \(dir.sub("pwned"))); `id`|v2 'x'|v1|inc;rm\n")
        #expect(!FileIO.exists(dir.sub("pwned")))
    }

    @Test func failureNamesTheArgvAndItsLastErrorLine() async throws {
        let dir = try ScratchDir("command")
        defer { dir.remove() }
        let script = dir.script("fail.sh", "echo starting; echo 'deploy: image v1 not found' >&2; exit 3")
        let exec = CommandExecutor(CommandStrategy(argv: [script, "--to", "v1"]), phaseTimeout: .seconds(60))
        let outcome = try await runPlan(exec, from: "v2", to: "v1", state: dir.sub("state"))
        #expect(
            outcome.status
                == .failed(
                    phase: "command", message: "command: \(script) --to v1: exit status 3: deploy: image v1 not found"))
        await #expect { try await exec.currentVersion() } throws: { e in
            "\(e)".contains("cannot tell which release is live")
        }
        let missing = CommandExecutor(CommandStrategy(argv: [dir.sub("nope.sh")]), phaseTimeout: .seconds(60))
        await #expect { try await missing.precheck(target: "v1") } throws: { e in
            "\(e)" == "command: \(dir.sub("nope.sh")) does not exist"
        }
    }
}

@Suite struct ExecutorFeatureFlagFileTests {
    @Test func turnsABooleanFlagOffKeepingTheRest() async throws {
        let dir = try ScratchDir("flag")
        defer { dir.remove() }
        let file = dir.write(
            "flags.json", #"{"new_checkout": true, "dark_mode": true, "limits": {"max": 3}}"# + "\n", mode: 0o640)
        let exec = FeatureFlagExecutor(
            FeatureFlagStrategy(flag: "new_checkout", file: file), phaseTimeout: .seconds(60))
        try await exec.precheck(target: "off")
        #expect(try exec.isOn())
        let outcome = try await runPlan(exec, from: "on", to: "off", state: dir.sub("state"))
        #expect(outcome.status == .finished, "\(outcome.summary)")
        #expect(TestFiles.read(file) == #"{"new_checkout":false,"dark_mode":true,"limits":{"max":3}}"# + "\n")
        #expect(Paths.mode(file) == 0o640)
        // Idempotent: already off, the file is not rewritten.
        var before = stat(), after = stat()
        stat(file, &before)
        try exec.turnOff(file: file)
        stat(file, &after)
        #expect(before.st_ino == after.st_ino && before.st_mtim.tv_nsec == after.st_mtim.tv_nsec)
    }

    @Test func turnsAnEnabledObjectOff() async throws {
        let dir = try ScratchDir("flag")
        defer { dir.remove() }
        let file = dir.write("flags.json", #"{"search_v2": {"enabled": true, "rollout": 0.5}}"#)
        let exec = FeatureFlagExecutor(FeatureFlagStrategy(flag: "search_v2", file: file), phaseTimeout: .seconds(60))
        #expect(try await runPlan(exec, from: "on", to: "off", state: dir.sub("state")).status == .finished)
        #expect(TestFiles.read(file) == #"{"search_v2":{"enabled":false,"rollout":0.5}}"# + "\n")
    }

    @Test func precheckNamesTheFileAndFlag() async throws {
        let dir = try ScratchDir("flag")
        defer { dir.remove() }
        let file = dir.write("flags.json", #"{"a": true, "b": "yes"}"#)
        let missing = FeatureFlagExecutor(FeatureFlagStrategy(flag: "c", file: file), phaseTimeout: .seconds(60))
        await #expect { try await missing.precheck(target: "off") } throws: { e in
            "\(e)" == "feature-flag: \(file): no flag \"c\" (a top-level key)"
        }
        let wrong = FeatureFlagExecutor(FeatureFlagStrategy(flag: "b", file: file), phaseTimeout: .seconds(60))
        await #expect { try await wrong.precheck(target: "off") } throws: { e in
            "\(e)" == "feature-flag: \(file): \"b\": expected true, false or an object with \"enabled\", found a string"
        }
        let broken = dir.write("broken.json", "{\"a\": tru}")
        let bad = FeatureFlagExecutor(FeatureFlagStrategy(flag: "a", file: broken), phaseTimeout: .seconds(60))
        await #expect { try await bad.precheck(target: "off") } throws: { e in
            "\(e)".hasPrefix("feature-flag: \(broken): invalid JSON at line 1")
        }
    }
}

@Suite struct ExecutorConfigStrategyTests {
    @Test func restoresFromADirectoryThenValidatesAndReloads() async throws {
        let dir = try ScratchDir("config")
        defer { dir.remove() }
        var s = ExecutorRunnerTests.configLayout(dir, validate: "grep -q good \(dir.sub("live/app.conf"))")
        s.reload = [dir.script("reload2.sh", "cat \(dir.sub("live/app.conf")) > \(dir.sub("reloaded-with"))")]
        let exec = ConfigExecutor(s, phaseTimeout: .seconds(60), stateDirectory: dir.sub("state"))
        #expect(try await exec.currentVersion() == "v2")
        #expect(try await exec.availableVersions() == ["v2", "v1"])
        try await exec.precheck(target: "v1")
        await #expect { try await exec.precheck(target: "v7") } throws: { e in
            "\(e)"
                == "config: \(dir.sub("releases/v7/app.conf")) is missing or unreadable (release v7 has no copy of \(dir.sub("live/app.conf")))"
        }
        let outcome = try await runPlan(exec, from: "v2", to: "v1", state: dir.sub("state"))
        #expect(outcome.status == .finished, "\(outcome.summary)")
        #expect(TestFiles.read(dir.sub("live/app.conf")) == "setting = good\n")
        #expect(TestFiles.read(dir.sub("live/extra.conf")) == "extra = 1\n")
        #expect(TestFiles.read(dir.sub("reloaded-with")) == "setting = good\n")
        #expect(try await exec.currentVersion() == "v1")
    }

    @Test func aValidateThatHangsIsStoppedAndTheFilesPutBack() async throws {
        let dir = try ScratchDir("config")
        defer { dir.remove() }
        let exec = ConfigExecutor(
            ExecutorRunnerTests.configLayout(dir, validate: "sleep 30"), phaseTimeout: .ms(500),
            stateDirectory: dir.sub("state"))
        let outcome = try await runPlan(exec, from: "v2", to: "v1", state: dir.sub("state"))
        guard case let .failed(phase, message) = outcome.status else { Issue.record("\(outcome.summary)"); return }
        #expect(phase == "validate")
        #expect(
            message.hasPrefix("config: \(dir.sub("validate.sh")): timed out after 500ms; put back the previous"),
            "\(message)")
        #expect(TestFiles.read(dir.sub("live/app.conf")) == "setting = bad\n")
        #expect(TestFiles.read(dir.sub("live/extra.conf")) == "extra = 2\n")
        #expect(!FileIO.exists(dir.sub("reloads.log")))
        // A new attempt after the failure starts again from the first phase.
        let retry = ConfigExecutor(
            ExecutorRunnerTests.configLayout(dir, validate: "exit 0"), phaseTimeout: .seconds(60),
            stateDirectory: dir.sub("state"))
        let second = try await runPlan(retry, from: "v2", to: "v1", state: dir.sub("state"))
        #expect(second.status == .finished, "\(second.summary)")
        #expect(
            second.reports.filter { $0.state == .completed }.map(\.phase.name) == ["restore", "validate", "reload"])
        #expect(try ExecutionRunner.journal(stateDirectory: dir.sub("state"))?.attempt == 2)
        #expect(TestFiles.read(dir.sub("live/app.conf")) == "setting = good\n")
    }

    @Test func restoresFromGitTags() async throws {
        let dir = try ScratchDir("config")
        defer { dir.remove() }
        let repo = dir.mkdirs("etc-app")
        let env = [
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        ]
        func git(_ args: String...) async throws {
            let r = try await ProcessRunner.run(["git", "-C", repo] + args, environment: env, timeout: .seconds(60))
            #expect(r.succeeded, "git \(args): \(r.stderrText)")
        }
        try await git("init", "-q")
        for (tag, value) in [("v1.9.0", "workers = 4"), ("v1.10.0", "workers = 64")] {
            dir.write("etc-app/conf.d/app.conf", value + "\n")
            try await git("add", "conf.d/app.conf")
            try await git("commit", "-qm", tag)
            try await git("tag", tag)
        }
        // The live file is inside the repository's work tree: `git show TAG:conf.d/app.conf`.
        let live = dir.sub("etc-app/conf.d/app.conf")
        let exec = ConfigExecutor(
            ConfigStrategy(files: [live], gitRepo: repo), phaseTimeout: .seconds(60), stateDirectory: dir.sub("state"))
        #expect(try await exec.availableVersions() == ["v1.10.0", "v1.9.0"])
        #expect(try await exec.currentVersion() == "v1.10.0")
        try await exec.precheck(target: "v1.9.0")
        await #expect { try await exec.precheck(target: "v0.1") } throws: { e in
            "\(e)".hasPrefix("config: git -C \(repo) cat-file -e v0.1:conf.d/app.conf: tag v0.1 has no conf.d/app.conf")
        }
        #expect(try await runPlan(exec, from: "v1.10.0", to: "v1.9.0", state: dir.sub("state")).status == .finished)
        #expect(TestFiles.read(live) == "workers = 4\n")
        #expect(try await exec.currentVersion() == "v1.9.0")
    }
}

@Suite struct ExecutorFeatureFlagHTTPTests {
    @Test func turnsAFlagOffOverHTTPWithTheToken() async throws {
        let dir = try ScratchDir("flaghttp")
        defer { dir.remove() }
        let server = try await Fixture.record(log: dir.sub("requests.log"))
        defer { server.stop() }
        let token = dir.write("token", "s3cret-token\n", mode: 0o600)
        let http = FeatureFlagHTTP(
            method: "PATCH", url: "http://\(server.hostPort)/api/flags/new_checkout",
            body: .object([("enabled", .bool(false))]), tokenFile: token)
        let exec = FeatureFlagExecutor(
            FeatureFlagStrategy(flag: "new_checkout", http: http), phaseTimeout: .seconds(60))
        try await exec.precheck(target: "off")
        let plan = exec.plan(from: "on", to: "off", incident: "i")
        #expect(
            plan.phases.map(\.description) == [
                "PATCH http://\(server.hostPort)/api/flags/new_checkout with body {\"enabled\":false} (Authorization: Bearer from \(token)), expecting 2xx"
            ])
        let outcome = try await runPlan(exec, from: "on", to: "off", state: dir.sub("state"))
        #expect(outcome.status == .finished, "\(outcome.summary)")
        let requests = try Fixture.recorded(dir.sub("requests.log"))
        #expect(requests.count == 1)
        #expect(requests.first?["method"] == .string("PATCH"))
        #expect(requests.first?["path"] == .string("/api/flags/new_checkout"))
        #expect(requests.first?["body"] == .string(#"{"enabled":false}"#))
        #expect(requests.first?["headers"]?["authorization"] == .string("Bearer s3cret-token"))
        #expect(requests.first?["headers"]?["content-type"] == .string("application/json"))
        // The token never appears in the plan or the outcome.
        #expect(!"\(plan.text) \(outcome.summary)".contains("s3cret"))
    }

    @Test func surfacesHTTPErrorsAndTimeouts() async throws {
        let dir = try ScratchDir("flaghttp")
        defer { dir.remove() }
        let server = try await Fixture.record(log: dir.sub("requests.log"))
        defer { server.stop() }
        let denied = FeatureFlagExecutor(
            FeatureFlagStrategy(
                flag: "f", http: FeatureFlagHTTP(method: "PUT", url: "http://\(server.hostPort)/status/403")),
            phaseTimeout: .seconds(60))
        #expect(
            try await runPlan(denied, from: "on", to: "off", state: dir.sub("state")).status
                == .failed(
                    phase: "flag-off",
                    message: "feature-flag: PUT http://\(server.hostPort)/status/403 for flag f: HTTP 403: status 403"))
        let slow = FeatureFlagExecutor(
            FeatureFlagStrategy(flag: "f", http: FeatureFlagHTTP(method: "PUT", url: "http://\(server.hostPort)/slow")),
            phaseTimeout: .ms(500))
        let started = monotonicMs()
        let outcome = try await runPlan(slow, from: "on", to: "off", incident: "i2", state: dir.sub("state"))
        #expect(
            outcome.status
                == .failed(
                    phase: "flag-off",
                    message: "feature-flag: PUT for flag f: timeout after 500ms for http://\(server.hostPort)/slow"))
        // Cut by the 500 ms phase timeout, far below the 30 s the server takes (generous for a loaded machine).
        #expect(Double(monotonicMs() - started) / 1000 < 15)
        let closed = FeatureFlagExecutor(
            FeatureFlagStrategy(flag: "f", http: FeatureFlagHTTP(url: "http://127.0.0.1:\(unusedPort())/f")),
            phaseTimeout: .seconds(60))
        let refused = try await runPlan(closed, from: "on", to: "off", incident: "i3", state: dir.sub("state"))
        guard case let .failed(_, message) = refused.status else { Issue.record("\(refused.summary)"); return }
        #expect(
            message.hasPrefix("feature-flag: PATCH for flag f: connection refused to http://127.0.0.1:"), "\(message)")
        let noToken = FeatureFlagExecutor(
            FeatureFlagStrategy(flag: "f", http: FeatureFlagHTTP(url: "http://x/", tokenFile: dir.sub("missing"))),
            phaseTimeout: .seconds(60))
        await #expect { try await noToken.precheck(target: "off") } throws: { e in
            "\(e)" == "feature-flag: \(dir.sub("missing")) (the token file) is missing or unreadable"
        }
    }
}
