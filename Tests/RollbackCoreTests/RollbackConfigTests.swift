import Testing
@testable import RollbackCore

@Suite struct RollbackConfigTests {
    func parse(_ json: String) throws(ConfigError) -> RollbackConfig {
        try RollbackConfig.parse(text: json, file: "thresholds.json")
    }

    func errors(_ json: String) -> [String] {
        do {
            _ = try parse(json)
            return []
        } catch {
            return error.lines
        }
    }

    @Test func readsEveryStrategy() throws {
        let cases: [(String, String)] = [
            (
                #"{"strategy": "symlink", "symlink": {"releasesDir": "/srv/a/releases", "currentLink": "/srv/a/current", "reload": ["systemctl", "reload", "a"]}}"#,
                "symlink"
            ),
            (
                #"{"strategy": "nginx-blue-green", "nginx-blue-green": {"upstreamFile": "/etc/nginx/app.conf", "upstreamName": "app", "colors": {"blue": ["127.0.0.1:1"], "green": ["127.0.0.1:2"]}}}"#,
                "nginx-blue-green"
            ),
            (
                #"{"strategy": "haproxy-canary", "haproxy-canary": {"socket": "/run/haproxy/admin.sock", "backend": "app", "canaryServer": "canary"}}"#,
                "haproxy-canary"
            ),
            (#"{"strategy": "systemd-unit", "systemd-unit": {"template": "app@", "persist": false}}"#, "systemd-unit"),
            (#"{"strategy": "kubernetes", "kubernetes": {"deployment": "web", "namespace": "prod"}}"#, "kubernetes"),
            (#"{"strategy": "docker-swarm", "docker-swarm": {"service": "web", "image": "reg/web"}}"#, "docker-swarm"),
            (
                #"{"strategy": "feature-flag", "feature-flag": {"flag": "new_checkout", "file": "/etc/app/flags.json"}}"#,
                "feature-flag"
            ),
            (
                #"{"strategy": "feature-flag", "feature-flag": {"flag": "f", "http": {"method": "put", "url": "https://flags.example/f", "body": {"on": false}, "tokenFile": "/etc/t", "timeout": "3s"}}}"#,
                "feature-flag"
            ),
            (
                #"{"strategy": "config", "config": {"files": ["/etc/app/app.conf"], "gitRepo": "/etc/app", "validate": ["app", "--check"]}}"#,
                "config"
            ),
            (#"{"strategy": "command", "command": {"argv": ["/usr/local/bin/deploy", "--rollback"]}}"#, "command"),
        ]
        for (json, name) in cases {
            let c = try parse(json)
            #expect(c.strategy.name == name)
            #expect(c.phaseTimeout == .seconds(60))
        }
        guard case let .systemdUnit(s) = try parse(cases[3].0).strategy else { Issue.record("not systemd"); return }
        #expect(s.persist == false)
        #expect(s.unit("1.4.1") == "app@1.4.1.service")
        guard case let .featureFlag(f) = try parse(cases[7].0).strategy, let http = f.http else {
            Issue.record("no http"); return
        }
        #expect(http.method == "PUT")
        #expect(http.tokenFile == "/etc/t")
        #expect(http.options.timeout == .seconds(3))
        #expect(http.body == .object([("on", .bool(false))]))
    }

    @Test(arguments: [
        (
            #"{"strategy": "symlink", "symlink": {"releasesDir": "/r", "currentLink": "/c"}, "migrationsDir": "/srv/db/migrate"}"#,
            #"thresholds.json: rollback.migrationsDir: "/srv/db/migrate" is absolute but has no {version} placeholder"#
        ),
        (
            #"{"strategy": "command", "command": {"argv": ["x"]}, "migrationsDir": "db/migrate"}"#,
            #"thresholds.json: rollback.migrationsDir: "db/migrate" is relative to a release directory, which only the symlink strategy has"#
        ),
        (
            #"{"strategy": "feature-flag", "feature-flag": {"flag": "f", "http": {"method": "GET", "url": "http://x/"}}}"#,
            #"thresholds.json: rollback.feature-flag.http.method: "GET" is not one of POST, PUT, PATCH, DELETE"#
        ),
        (
            #"{"strategy": "feature-flag", "feature-flag": {"flag": "f", "http": {"url": "http://x/", "tokenFile": "/a", "bearerTokenFile": "/b"}}}"#,
            "thresholds.json: rollback.feature-flag.http.bearerTokenFile: give the token once"
        ),
        (
            #"{"strategy": "feature-flag", "feature-flag": {"flag": "f", "http": {"url": "http://x/", "body": "flag=off"}}}"#,
            "thresholds.json: rollback.feature-flag.http.body: expected a JSON object or array"
        ),
        (
            #"{"strategy": "feature-flag", "feature-flag": {"flag": "f", "file": "/a", "http": {"url": "http://x/"}}}"#,
            "thresholds.json: rollback.feature-flag: needs exactly one of http or file"
        ),
        (
            #"{"strategy": "systemd-unit", "systemd-unit": {"template": "app@", "persist": "yes"}}"#,
            "thresholds.json: rollback.systemd-unit.persist: expected true or false, found a string"
        ),
        (
            #"{"strategy": "command", "command": {"argv": "deploy --rollback"}}"#,
            "thresholds.json: rollback.command.argv: expected an argv array"
        ),
        (
            #"{"strategy": "symlink", "symlink": {"releasesDir": "/r", "currentLink": "/c", "relaod": ["x"]}}"#,
            #"thresholds.json: rollback.symlink.relaod: unknown key (did you mean "reload"?)"#
        ),
    ])
    func rejectsWithThePath(json: String, fragment: String) {
        let lines = errors(json)
        #expect(lines.contains { $0.hasPrefix(fragment) }, "\(lines)")
    }

    @Test func placesMigrationsDirectories() throws {
        let relative = try parse(
            #"{"strategy": "symlink", "symlink": {"releasesDir": "/srv/a/releases", "currentLink": "/srv/a/current"}, "migrationsDir": "db/migrate"}"#
        )
        #expect(relative.migrationsDirectory(for: "v1") == "/srv/a/releases/v1/db/migrate")
        let absolute = try parse(
            #"{"strategy": "command", "command": {"argv": ["x"]}, "migrationsDir": "/srv/a/{version}/migrations"}"#)
        #expect(absolute.migrationsDirectory(for: "v2") == "/srv/a/v2/migrations")
        #expect(
            try parse(#"{"strategy": "command", "command": {"argv": ["x"]}}"#).migrationsDirectory(for: "v2") == nil)
    }

    @Test func configGitPaths() {
        let c = ConfigStrategy(files: ["/etc/app/conf.d/app.conf", "/etc/other/x.conf"], gitRepo: "/etc/app")
        #expect(c.gitPath(for: "/etc/app/conf.d/app.conf") == "conf.d/app.conf")
        #expect(c.gitPath(for: "/etc/other/x.conf") == "x.conf")
        let d = ConfigStrategy(files: ["/etc/app/app.conf"], directory: "/srv/configs")
        #expect(d.directoryCopy(of: "/etc/app/app.conf", version: "v1") == "/srv/configs/v1/app.conf")
    }

    @Test func aStrategyAloneIsAOneStepPlan() throws {
        let c = try parse(#"{"strategy": "command", "command": {"argv": ["/x"]}}"#)
        #expect(!c.isPlan)
        #expect(c.steps == [RollbackStep(.command(CommandStrategy(argv: ["/x"])))])
        #expect(c.strategy == .command(CommandStrategy(argv: ["/x"])))
    }

    @Test func readsStepsInOrderWithTheirOwnKeys() throws {
        let c = try parse(
            #"""
            {"phaseTimeout": "2m", "steps": [
              {"strategy": "feature-flag", "feature-flag": {"flag": "f", "file": "/etc/f.json"}},
              {"name": "app", "strategy": "symlink", "timeout": "30s",
               "symlink": {"releasesDir": "/srv/a/releases", "currentLink": "/srv/a/current"}},
              {"name": "db", "strategy": "command", "approval": false, "command": {"argv": ["/down"]}},
              {"name": "purge", "strategy": "command", "onFailure": "continue", "command": {"argv": ["/purge"]}}
            ]}
            """#)
        #expect(c.isPlan)
        #expect(c.steps.map(\.strategy.name) == ["feature-flag", "symlink", "command", "command"])
        #expect(c.steps.map(\.name) == [nil, "app", "db", "purge"])
        #expect(c.steps.map(\.timeout) == [nil, .seconds(30), nil, nil])
        #expect(c.steps.map(\.onFailure) == [.halt, .halt, .halt, .continue])
        #expect(c.steps.map(\.approval) == [false, false, false, false])
        // The version comes from the first application step (the symlink), not the first step.
        #expect(c.versionStepIndex == 1)
        #expect(c.symlinkStrategy?.currentLink == "/srv/a/current")
        #expect(c.steps[1].label(index: 1) == #"2 "app" (symlink)"#)
        #expect(c.steps[0].label(index: 0) == "1 (feature-flag)")
    }

    @Test func versionTrueChoosesTheVersionStep() throws {
        let c = try parse(
            #"""
            {"steps": [
              {"strategy": "symlink", "symlink": {"releasesDir": "/r", "currentLink": "/c"}},
              {"strategy": "systemd-unit", "version": true, "systemd-unit": {"template": "app@"}}
            ]}
            """#)
        #expect(c.versionStepIndex == 1)
        #expect(c.strategy.name == "systemd-unit")
        let flagsOnly = try parse(
            #"{"steps": [{"strategy": "command", "command": {"argv": ["/a"]}}, {"strategy": "feature-flag", "feature-flag": {"flag": "f", "file": "/f"}}]}"#
        )
        #expect(flagsOnly.versionStepIndex == 0)
    }

    @Test func readsARestoreSchedule() throws {
        let c = try parse(
            #"""
            {"steps": [
              {"name": "lb", "strategy": "haproxy-canary", "restore": [{"weight": 10, "hold": "30s"}, {"weight": 50, "hold": "1m"}, {"weight": 100}],
               "haproxy-canary": {"socket": "/run/h.sock", "backend": "b", "canaryServer": "c", "mode": "weight"}},
              {"strategy": "symlink", "symlink": {"releasesDir": "/r", "currentLink": "/c"}}
            ]}
            """#)
        #expect(
            c.steps[0].restore == [
                RestoreStage(weight: 10, hold: .seconds(30)), RestoreStage(weight: 50, hold: .minutes(1)),
                RestoreStage(weight: 100),
            ])
        #expect(c.steps[1].restore == [])
        #expect(RestoreStage.text(c.steps[0].restore) == "10 (hold 30s) -> 50 (hold 1m) -> 100")
        // The events of a failure name the step, what had run (a restore runs after later steps) and what did not.
        #expect(c.stepFields(ofPhase: "1.hold-10") == ["step": "1", "step_label": #"1 "lb" (haproxy-canary)"#])
        #expect(c.stepFields(ofPhase: "hold-10") == [:])
        #expect(c.stepFailureFields(failed: 0, ran: [1])["steps_run"] == "2 (symlink)")
        #expect(c.stepFailureFields(failed: 0)["steps_not_run"] == "2 (symlink)")
    }

    @Test func restoreErrorsNameTheJSONPath() {
        let lb = #""haproxy-canary": {"socket": "/run/h.sock", "backend": "b", "canaryServer": "c", "mode": "weight"}"#
        #expect(
            errors(
                #"{"steps": [{"strategy": "haproxy-canary", \#(lb), "restore": [{"weight": 0}, {"weight": 5, "hold": 3, "wait": "1s"}]}]}"#
            )
                == [
                    "thresholds.json: rollback.steps[0].restore[0].weight: expected a whole weight from 1 to 256 (HAProxy's range), found 0",
                    "thresholds.json: rollback.steps[0].restore[1].hold: expected a duration string such as \"5s\", \"2m\" or \"1h\", found a number",
                    "thresholds.json: rollback.steps[0].restore[1].wait: unknown key; expected one of hold, weight",
                ])
        #expect(
            errors(#"{"steps": [{"strategy": "command", "command": {"argv": ["/a"]}, "restore": [{"weight": 5}]}]}"#)
                == [
                    "thresholds.json: rollback.steps[0].restore: a restore schedule needs a step that carries weights (haproxy-canary with \"mode\": \"weight\"); step 1 is command"
                ])
        #expect(
            errors(#"{"steps": [{"strategy": "haproxy-canary", \#(lb), "restore": []}]}"#) == [
                "thresholds.json: rollback.steps[0].restore: must list at least one stage, e.g. [{\"weight\": 10, \"hold\": \"30s\"}, {\"weight\": 100}]"
            ])
    }

    @Test func stepErrorsNameTheJSONPath() {
        #expect(
            errors(
                #"{"steps": [{"strategy": "command", "command": {"argv": ["/a"]}}, {"strategy": "command", "command": {}, "onFailure": "retry", "timeout": 5}]}"#
            ) == [
                "thresholds.json: rollback.steps[1].timeout: expected a duration string such as \"5s\", \"2m\" or \"1h\", found a number",
                "thresholds.json: rollback.steps[1].onFailure: \"retry\" is not one of halt, continue",
                "thresholds.json: rollback.steps[1].command.argv: is required",
            ])
        #expect(
            errors(#"{"steps": [{"strategy": "command", "command": {"argv": ["/a"]}, "symlink": {}}]}"#) == [
                "thresholds.json: rollback.steps[0].symlink: settings for strategy symlink, but strategy is \"command\""
            ])
        #expect(
            errors(#"{"steps": [{"strategy": "command", "command": {"argv": ["/a"]}}], "command": {"argv": ["/b"]}}"#)
                == [
                    "thresholds.json: rollback.command: settings for strategy command belong inside its step in steps"
                ])
        #expect(
            errors(#"{"steps": {"strategy": "command"}}"#) == [
                "thresholds.json: rollback.steps: expected an array of steps, found an object"
            ])
        #expect(
            errors(#"{"migrationsDir": "db/migrate", "steps": [{"strategy": "command", "command": {"argv": ["/a"]}}]}"#)
                .first?.hasPrefix(
                    "thresholds.json: rollback.migrationsDir: \"db/migrate\" is relative to a release directory")
                == true)
    }
}

@Suite struct RollbackMigrationCheckTests {
    @Test(arguments: [
        ("0003_add_index.up.sql", "0003_add_index"), ("20240101120000_create_users.rb", "20240101120000_create_users"),
        ("V2__add.sql", "V2__add"), ("README", "README"), (".hidden", ".hidden"),
    ])
    func migrationIDs(file: String, id: String) {
        #expect(MigrationCheck.migrationID(file) == id)
    }

    @Test func comparesTwoReleases() {
        let c = MigrationCheck.compare(
            fromVersion: "v2", current: ["1_a.up.sql", "1_a.down.sql", "2_b.up.sql", "3_c.up.sql"],
            toVersion: "v1", target: ["1_a.up.sql", "1_a.down.sql", "2_b.up.sql", "9_hotfix.sql"])
        #expect(c.unknownToTarget == ["3_c"])
        #expect(c.onlyInTarget == ["9_hotfix"])
        #expect(c.targetLacksMigrations)
        #expect(c.allowedAutomation(.full, compatible: false) == .semi)
        #expect(c.allowedAutomation(.semi, compatible: false) == .semi)
        #expect(c.allowedAutomation(.manual, compatible: false) == .manual)
        #expect(c.allowedAutomation(.full, compatible: true) == .full)
        #expect(
            c.gate(compatible: false)
                == GateResult(
                    gate: "database", passed: false,
                    detail:
                        "v1 lacks 1 migration(s) of v2 (3_c); automatic rollback demoted to semi: a human decides about the database (rollbackd never runs down-migrations)"
                ))
        #expect(c.gate(compatible: true).passed)
        let same = MigrationCheck.compare(fromVersion: "v2", current: ["1_a.sql"], toVersion: "v1", target: ["1_a.sql"])
        #expect(!same.targetLacksMigrations)
        #expect(
            same.gate(compatible: false)
                == GateResult(gate: "database", passed: true, detail: "v1 knows every migration of v2"))
        let many = MigrationCheck.compare(
            fromVersion: "b", current: (1...8).map { "\($0)_m.sql" }, toVersion: "a", target: [])
        #expect(
            many.gate(compatible: false).detail.hasPrefix(
                "a lacks 8 migration(s) of b (1_m, 2_m, 3_m, 4_m, 5_m and 3 more)"))
    }
}
