import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The docker-swarm strategy against a real Docker engine: Debian's dockerd started by
/// Tests/Servers/dockerd_harness.sh (its own data root and socket in a scratch directory, a single-node swarm, local
/// images from `docker import`, no registry), and the real `rollbackd run-plan` / `rollbackd plan` with a table
/// naming the service. The stand-in tests (ExecutorClusterTests) keep the argv and output parsing; this one shows
/// the engine doing what rollbackd asked.
@Suite(.serialized) struct ExecutorDockerEngineTests {
    static let harness = RepoPaths.server("dockerd_harness.sh")

    /// `DIR/docker ARGS`: the CLI bound to the test's engine; stdout trimmed, or the failure with Docker's stderr.
    @discardableResult
    static func docker(_ dir: String, _ args: [String], timeout: Interval = .seconds(120)) async throws -> String {
        let r = try await ProcessRunner.run([dir + "/docker"] + args, timeout: timeout)
        guard r.succeeded else {
            throw TestFailure("docker \(ProcessRunner.display(args)): \(r.summary(timeout: timeout))\n\(r.stderrText)")
        }
        return r.stdoutText.trimmed
    }

    /// A table whose rollback is the docker-swarm strategy on `service` (`image` for rolling to a chosen tag).
    static func table(_ dir: String, service: String, image: String?) -> String {
        let imageKey = image.map { #", "image": "\#($0)""# } ?? ""
        return """
            {"service": "web", "interval": "5s", "instances": ["http://127.0.0.1:9"],
             "metrics": {"unhealthy": {"type": "probe", "path": "/healthz", "measure": "unhealthyRatio"}},
             "triggers": [{"name": "down", "metric": "unhealthy", "condition": {"above": 0.3}, "severity": "critical",
                           "respondWithin": "2m", "automation": "full"}],
             "rollback": {"strategy": "docker-swarm", "phaseTimeout": "2m",
                          "docker-swarm": {"service": "\(service)", "docker": "\(dir)/docker"\(imageKey)}}}
            """
    }

    @Test(.timeLimit(.minutes(10)))
    func aSwarmServiceIsRolledBackOnARealEngine() async throws {
        let scratch = try ScratchDir("docker")
        let start = try await ProcessRunner.run(["bash", Self.harness, "start", scratch.path], timeout: .minutes(3))
        guard start.succeeded else {
            _ = try? await ProcessRunner.run(["bash", Self.harness, "stop", scratch.path], timeout: .minutes(2))
            throw TestFailure("dockerd_harness.sh start: \(start.summary(timeout: .minutes(3)))\n\(start.stderrText)")
        }
        print("docker engine and swarm ready in \(start.stdoutText.trimmed.dropFirst("ready ".count)) s")
        var failure: (any Error)?
        do { try await Self.scenario(scratch) } catch { failure = error }
        let stop = try await ProcessRunner.run(["bash", Self.harness, "stop", scratch.path], timeout: .minutes(2))
        #expect(stop.succeeded, "dockerd_harness.sh stop: \(stop.stderrText)")
        if let failure { throw failure }
    }

    static func scenario(_ scratch: ScratchDir) async throws {
        let dir = scratch.path
        // v1 runs; v2 is deployed on top (the release to roll back from). Short monitors: seconds, not ~30 s.
        try await docker(
            dir,
            [
                "service", "create", "--detach=false", "--no-resolve-image", "--name", "rbweb", "--replicas", "2",
                "--stop-grace-period", "1s", "--update-monitor", "1s", "--rollback-monitor", "1s",
                "rbtest/app:v1",
            ])
        try await docker(
            dir, ["service", "update", "--detach=false", "--no-resolve-image", "--image", "rbtest/app:v2", "rbweb"])
        let inspect = ["service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", "rbweb"]
        #expect(try await docker(dir, inspect) == "rbtest/app:v2")

        // rollbackd run-plan: the one rollback procedure (lock, precheck, phases) with `docker service update
        // --rollback`.
        scratch.write("rollback.json", table(dir, service: "rbweb", image: nil))
        let t0 = monotonicMs()
        let run = try await runRollbackd(
            ["run-plan", "--config", scratch.sub("rollback.json"), "--to", "v1", "--state-dir", scratch.sub("state")],
            timeout: .minutes(5))
        let seconds = Double(monotonicMs() - t0) / 1000
        #expect(run.succeeded, "rollbackd run-plan --to v1: \(run.stdoutText)\n\(run.stderrText)")
        print("docker-swarm rollback v2 -> v1 on a real engine: \(seconds) s (rollbackd run-plan, 2 replicas)")
        #expect(try await docker(dir, inspect) == "rbtest/app:v1")
        // Its running tasks are v1, and the containers serve v1's files.
        let tasks = try await docker(
            dir,
            ["service", "ps", "--filter", "desired-state=running", "--format", "{{.Image}} {{.CurrentState}}", "rbweb"])
        let lines = tasks.split(separator: "\n").map(String.init)
        #expect(lines.count == 2 && lines.allSatisfy { $0.hasPrefix("rbtest/app:v1 Running") }, "\(tasks)")
        let containers = try await docker(
            dir, ["ps", "--filter", "label=com.docker.swarm.service.name=rbweb", "--format", "{{.ID}}"])
        let ids = containers.split(separator: "\n").map(String.init)
        #expect(ids.count == 2, "\(containers)")
        for id in ids {
            #expect(try await docker(dir, ["exec", id, "/bin/busybox", "cat", "/etc/release"]) == "v1")
        }
        // Run again: nothing to do (a second --rollback would roll the rollback back).
        let again = try await runRollbackd(
            ["run-plan", "--config", scratch.sub("rollback.json"), "--to", "v1", "--state-dir", scratch.sub("state2")],
            timeout: .minutes(5))
        #expect(again.succeeded, "\(again.stderrText)")
        #expect(try await docker(dir, inspect) == "rbtest/app:v1")

        // Rolling to a chosen tag: the precheck refuses an image that does not exist, with Docker's own answer.
        scratch.write("chosen.json", table(dir, service: "rbweb", image: "rbtest/app"))
        let missing = try await runRollbackd(["plan", "--config", scratch.sub("chosen.json"), "--to", "v9"])
        #expect(missing.termination == .exited(1))
        #expect(
            missing.stdoutText.contains(
                "precheck: FAILED: docker-swarm: image rbtest/app:v9 does not exist on this node or in its registry")
                && missing.stdoutText.contains("No such image: rbtest/app:v9"),
            "\(missing.stdoutText)")
        let present = try await runRollbackd(["plan", "--config", scratch.sub("chosen.json"), "--to", "v2"])
        #expect(present.succeeded && present.stdoutText.contains("precheck: passed"), "\(present.stdoutText)")

        // An update whose tasks cannot run: Docker pauses it, and rollbackd reports Docker's own message.
        let failed = try await runRollbackd(
            [
                "run-plan", "--config", scratch.sub("chosen.json"), "--to", "broken", "--state-dir",
                scratch.sub("state3"),
            ],
            timeout: .minutes(5))
        #expect(failed.termination == .exited(1))
        #expect(
            (failed.stdoutText + failed.stderrText).contains(
                "update paused due to failure or early termination of task"),
            "\(failed.stdoutText)\n\(failed.stderrText)")
    }
}
