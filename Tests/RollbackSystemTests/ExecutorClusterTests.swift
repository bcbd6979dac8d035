#if canImport(Glibc)
import Glibc
#endif
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

/// kubectl and docker stand-ins: Tests/Servers/executors/standin.py behind a tiny wrapper named like the binary.
/// No Kubernetes cluster or Docker engine is available to the tests; the stand-in records the argv rollbackd
/// passes and answers in the tools' real output formats.
enum StandIn {
    static func make(_ tool: String, dir: ScratchDir, state: String) -> (binary: String, statePath: String) {
        let statePath = dir.write("\(tool)-state.json", state)
        let binary = dir.script(
            tool, "exec python3 \(RepoPaths.server("executors/standin.py")) \(tool) \(statePath) \"$@\"")
        return (binary, statePath)
    }

    /// The argv lists the stand-in received, in order.
    static func calls(_ statePath: String) throws -> [[String]] {
        let v = try JSONParser.parse(TestFiles.read(statePath) ?? "")
        guard case let .array(items)? = v["calls"] else { return [] }
        return items.map { item in
            guard case let .array(args) = item else { return [] }
            return args.compactMap {
                if case let .string(s) = $0 { return s }; return nil
            }
        }
    }
}

@Suite struct ExecutorKubernetesTests {
    @Test func parsesRolloutHistory() throws {
        let text = """
            deployment.apps/web 
            REVISION  CHANGE-CAUSE
            1         <none>
            3         kubectl set image deployment/web web=registry.example/web:1.4.2 --record=true
            2         kubectl apply --filename=web.yaml

            """
        #expect(
            try KubectlRolloutHistory.parse(text) == [
                KubeRevision(number: 1, changeCause: nil),
                KubeRevision(number: 2, changeCause: "kubectl apply --filename=web.yaml"),
                KubeRevision(
                    number: 3,
                    changeCause: "kubectl set image deployment/web web=registry.example/web:1.4.2 --record=true"),
            ])
        #expect { try KubectlRolloutHistory.parse("No resources found in prod namespace.\n") } throws: { e in
            "\(e)"
                == "kubernetes: kubectl rollout history: no REVISION header in \"No resources found in prod namespace.\\n\""
        }
        #expect { try KubectlRolloutHistory.parse("REVISION  CHANGE-CAUSE\nabc <none>\n") } throws: { e in
            "\(e)" == "kubernetes: kubectl rollout history: cannot read line \"abc <none>\""
        }
    }

    static let state =
        #"{"deployments": {"web": {"namespace": "prod", "revisions": [[1, null], [2, "kubectl set image deployment/web web=web:1.4.1"], [3, "kubectl set image deployment/web web=web:1.4.2"]]}}}"#

    @Test func undoesToARevisionThenWaitsForTheRollout() async throws {
        let dir = try ScratchDir("kube")
        defer { dir.remove() }
        let (kubectl, statePath) = StandIn.make("kubectl", dir: dir, state: Self.state)
        let exec = KubernetesExecutor(
            KubernetesStrategy(
                deployment: "web", namespace: "prod", context: "staging", kubectl: kubectl,
                statusTimeout: .minutes(2)), phaseTimeout: .seconds(60))
        #expect(try await exec.currentVersion() == "3")
        #expect(try await exec.availableVersions() == ["3", "2", "1"])
        try await exec.precheck(target: "2")
        await #expect { try await exec.precheck(target: "9") } throws: { e in
            "\(e)" == "kubernetes: deployment/web has no revision 9 (history: 1, 2, 3)"
        }
        await #expect { try await exec.precheck(target: "3") } throws: { e in
            "\(e)" == "kubernetes: revision 3 is already the newest revision of deployment/web"
        }
        await #expect { try await exec.precheck(target: "two") } throws: { e in
            "\(e)" == "kubernetes: \"two\" is not a revision number"
        }

        let plan = exec.plan(from: "3", to: "2", incident: "inc-k")
        #expect(
            plan.phases.map(\.description) == [
                "run \(kubectl) --context staging rollout undo deployment/web -n prod --to-revision=2 (skipped when the history shows it already happened)",
                "run \(kubectl) --context staging rollout status deployment/web -n prod --timeout=2m",
            ])
        #expect(plan.phases[1].timeout == .seconds(130))
        let before = try StandIn.calls(statePath).count
        let outcome = try await runPlan(exec, from: "3", to: "2", incident: "inc-k", state: dir.sub("state"))
        #expect(outcome.status == .finished, "\(outcome.summary)")
        #expect(
            Array(try StandIn.calls(statePath).dropFirst(before)) == [
                ["--context", "staging", "rollout", "history", "deployment/web", "-n", "prod"],
                ["--context", "staging", "rollout", "undo", "deployment/web", "-n", "prod", "--to-revision=2"],
                ["--context", "staging", "rollout", "status", "deployment/web", "-n", "prod", "--timeout=2m"],
            ])
        // Kubernetes renumbered revision 2 as 4.
        #expect(try await exec.currentVersion() == "4")
        // The undo phase again (as after a crash before its completion was recorded) sends no second undo.
        let count = try StandIn.calls(statePath).count
        try await exec.run(phase: plan.phases[0], of: plan)
        let after = try StandIn.calls(statePath).dropFirst(count)
        #expect(after.map { $0[3] } == ["history"], "\(after)")
    }

    @Test func surfacesKubectlErrors() async throws {
        let dir = try ScratchDir("kube")
        defer { dir.remove() }
        let (kubectl, statePath) = StandIn.make("kubectl", dir: dir, state: Self.state)
        let missing = KubernetesExecutor(
            KubernetesStrategy(deployment: "api", namespace: "prod", kubectl: kubectl), phaseTimeout: .seconds(60))
        await #expect { try await missing.precheck(target: "2") } throws: { e in
            "\(e)"
                == "kubernetes: \(kubectl) rollout history deployment/api -n prod: exit status 1: Error from server (NotFound): deployments.apps \"api\" not found"
        }
        // The rollout does not become ready: the status phase fails with kubectl's own words.
        let failing = String(Self.state.dropLast()) + #", "statusFails": true}"#
        try FileIO.writeAtomically(path: statePath, bytes: Array(failing.utf8))
        let exec = KubernetesExecutor(
            KubernetesStrategy(deployment: "web", namespace: "prod", kubectl: kubectl), phaseTimeout: .seconds(60))
        let outcome = try await runPlan(exec, from: "3", to: "1", state: dir.sub("state"))
        #expect(
            outcome.status
                == .failed(
                    phase: "status",
                    message:
                        "kubernetes: \(kubectl) rollout status deployment/web -n prod --timeout=5m: exit status 1: error: deployment \"web\" exceeded its progress deadline"
                ))
        // Moved under our feet: the plan was made at revision 3, but the deployment is now at 5.
        let moved = exec.plan(from: "3", to: "2", incident: "x")
        await #expect { try await exec.run(phase: moved.phases[0], of: moved) } throws: { e in
            "\(e)" == "kubernetes: deployment/web moved from revision 3 to 4 since the plan was made; not undoing"
        }
    }
}

@Suite struct ExecutorDockerSwarmTests {
    @Test func tagsOfImageReferences() {
        #expect(DockerSwarmExecutor.tag(of: "registry.example:5000/team/web:1.4.2@sha256:abcd") == "1.4.2")
        #expect(DockerSwarmExecutor.tag(of: "web:2") == "2")
        #expect(DockerSwarmExecutor.tag(of: "registry.example:5000/web") == "latest")
        #expect(DockerSwarmExecutor.tag(of: "web@sha256:abcd") == "latest")
    }

    static let state =
        #"{"services": {"web": {"image": "reg.example:5000/web:1.4.2@sha256:aa", "previous": "reg.example:5000/web:1.4.1@sha256:bb", "state": "completed"}}}"#

    @Test func rollsBackOnceEvenWhenRunTwice() async throws {
        let dir = try ScratchDir("docker")
        defer { dir.remove() }
        let (docker, statePath) = StandIn.make("docker", dir: dir, state: Self.state)
        let exec = DockerSwarmExecutor(DockerSwarmStrategy(service: "web", docker: docker), phaseTimeout: .seconds(60))
        #expect(try await exec.currentVersion() == "1.4.2")
        #expect(try await exec.availableVersions() == ["1.4.1"])
        try await exec.precheck(target: "1.4.1")
        await #expect { try await exec.precheck(target: "1.3.0") } throws: { e in
            "\(e)"
                == "docker-swarm: docker service update --rollback would go to reg.example:5000/web:1.4.1@sha256:bb, not 1.3.0; set docker-swarm.image to roll to a chosen tag"
        }
        let outcome = try await runPlan(exec, from: "1.4.2", to: "1.4.1", state: dir.sub("state"))
        #expect(outcome.status == .finished, "\(outcome.summary)")
        let inspect = ["service", "inspect", "--format", DockerSwarmExecutor.inspectFormat, "web"]
        let calls = try StandIn.calls(statePath)
        #expect(
            calls.filter { $0.contains("update") } == [["service", "update", "--detach=false", "--rollback", "web"]])
        #expect(calls.filter { $0 == inspect }.count == calls.count - 1)
        #expect(try await exec.currentVersion() == "1.4.1")
        // `--rollback` twice would roll back the rollback: the update phase run again sends nothing.
        let plan = exec.plan(from: "1.4.2", to: "1.4.1", incident: "i")
        try await exec.run(phase: plan.phases[0], of: plan)
        #expect(try StandIn.calls(statePath).filter { $0.contains("update") }.count == 1)
        #expect(try await exec.currentVersion() == "1.4.1")
    }

    @Test func rollsToAChosenTagAndSurfacesErrors() async throws {
        let dir = try ScratchDir("docker")
        defer { dir.remove() }
        let (docker, statePath) = StandIn.make("docker", dir: dir, state: Self.state)
        let exec = DockerSwarmExecutor(
            DockerSwarmStrategy(service: "web", image: "reg.example:5000/web", docker: docker),
            phaseTimeout: .seconds(60))
        #expect(try await runPlan(exec, from: "1.4.2", to: "1.3.9", state: dir.sub("state")).status == .finished)
        #expect(
            try StandIn.calls(statePath).contains([
                "service", "update", "--detach=false", "--image", "reg.example:5000/web:1.3.9", "web",
            ]))
        #expect(try await exec.currentVersion() == "1.3.9")
        let missing = DockerSwarmExecutor(
            DockerSwarmStrategy(service: "api", docker: docker), phaseTimeout: .seconds(60))
        await #expect { try await missing.currentVersion() } throws: { e in
            "\(e)"
                == "docker-swarm: \(docker) service inspect --format '\(DockerSwarmExecutor.inspectFormat)' api: exit status 1: Error: no such service: api"
        }
    }
}

@Suite struct ExecutorSystemdTests {
    @Test func planNamesEverySystemctlCall() {
        let exec = SystemdUnitExecutor(
            SystemdUnitStrategy(template: "app@", activeTimeout: .seconds(30)), phaseTimeout: .seconds(20))
        let plan = exec.plan(from: "1.4.2", to: "1.4.1", incident: "i")
        #expect(
            plan.phases.map { "\($0.name): \($0.description) [\($0.timeout)]" } == [
                "start-good: run systemctl start app@1.4.1.service [20s]",
                "wait-active: poll systemctl is-active app@1.4.1.service until active [30s]",
                "stop-bad: run systemctl stop app@1.4.2.service [20s]",
                "enable-good: run systemctl enable app@1.4.1.service [20s]",
                "disable-bad: run systemctl disable app@1.4.2.service [20s]",
            ])
        let transient = SystemdUnitExecutor(
            SystemdUnitStrategy(template: "app@", persist: false), phaseTimeout: .seconds(20))
        #expect(
            transient.plan(from: "a", to: "b", incident: "i").phases.map(\.name) == [
                "start-good", "wait-active", "stop-bad",
            ])
    }

    @Test func readsActiveInstancesFromListUnits() {
        let text = """
            app@1.4.2.service       loaded active running Example API 1.4.2
            app@1.4.1.service       loaded active running Example API 1.4.1
            other@x.service         loaded active running Something else

            """
        #expect(SystemdUnitExecutor.parseListUnits(text, template: "app@") == ["1.4.2", "1.4.1"])
        #expect(SystemdUnitExecutor.parseListUnits("", template: "app@") == [])
    }

    /// Against the machine's real systemctl, with a unit that does not exist: whether systemd runs here (LoadState
    /// not-found, "Unit … not found") or not (no bus), the error names the systemctl argv and carries its words.
    /// Starting and stopping real units needs a booted systemd, which the test machine may not have.
    @Test func surfacesRealSystemctlErrors() async throws {
        let systemctl = try #require(
            program(named: "systemctl"), "systemctl is not installed (make test-deps installs Debian's systemd)")
        let exec = SystemdUnitExecutor(
            SystemdUnitStrategy(template: "rollbackd-selftest@", activeTimeout: .seconds(2), systemctl: systemctl),
            phaseTimeout: .seconds(60))
        await #expect { try await exec.precheck(target: "v1") } throws: { e in
            let s = "\(e)"
            return s.hasPrefix("systemd-unit: ")
                && s.contains("systemctl show --property=LoadState --value rollbackd-selftest@v1.service")
        }
        await #expect { try await exec.currentVersion() } throws: { e in
            let s = "\(e)"
            return s.contains("rollbackd-selftest@*.service")
        }
        let dir = try ScratchDir("systemd")
        defer { dir.remove() }
        let outcome = try await runPlan(exec, from: "v2", to: "v1", state: dir.sub("state"))
        guard case let .failed(phase, message) = outcome.status else { Issue.record("\(outcome.summary)"); return }
        #expect(phase == "start-good")
        #expect(
            message.hasPrefix("systemd-unit: \(systemctl) start rollbackd-selftest@v1.service: exit status "),
            "\(message)")
        print("systemctl start of a missing unit surfaced as: \(message)")
    }
}
