import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `rollbackd demo --fleet N`, run as the real binary: a real 3-member etcd, N `rollbackd run` hosts with their own
/// `rollbackd-demo-service` instances. Bounds prove "it ends" and "every host rolled back", not speed (that is for
/// Benchmarks/fleet). The runs that need etcd are nested in `FleetTests`, so that they take turns with its fleets
/// (each a 3-member etcd and three hosts) instead of loading the two cores together; the checks that need no etcd
/// run whether it is installed or not.
extension FleetTests {
    @Suite struct Demo {
        @Test func fleetDemoRollsEveryHostBackOnTheLeadersDecision() async throws {
            let dir = try ScratchDir("fleet-demo").path
            let r = try await runRollbackd(
                ["demo", "--fleet", "3", "--json", "--work-dir", dir], timeout: .seconds(300))
            #expect(r.termination == .exited(0), "\(r.stdoutText)\n\(r.stderrText)")
            let summary = try JSONParser.parse(r.stdoutText)
            #expect(summary["outcome"] == .string("verified"), "\(r.stdoutText)\n\(r.stderrText)")
            #expect(summary["everyHostRolledBack"] == .bool(true), "\(r.stdoutText)")
            guard case let .array(hosts)? = summary["hosts"] else { throw TestFailure("no hosts in \(r.stdoutText)") }
            #expect(hosts.count == 3)
            for h in hosts {
                #expect(h["live"] == .string("v1"), "\(h)")
                #expect(DemoDrillTests.number(h["swappedSeconds"]).map { $0 > 0 } == true, "\(h)")
            }
            let detect = try #require(DemoDrillTests.number(summary["detectSeconds"]))
            let last = try #require(DemoDrillTests.number(summary["lastSwappedSeconds"]))
            let verified = try #require(DemoDrillTests.number(summary["verifiedSeconds"]))
            #expect(detect > 0 && last >= detect && verified >= last, "\(r.stdoutText)")
            // The leader fired on the fleet's summed counts (`N of M since v2 went live`), and said so.
            guard case let .string(firing)? = summary["firing"], case let .string(leader)? = summary["leader"] else {
                throw TestFailure("no firing event or leader in \(r.stdoutText)")
            }
            #expect(firing.hasPrefix(leader + ": ") && firing.contains(" of "), "\(firing)")
            #expect(r.stderrText.contains("RESULT: every host rolled back to v1"), "\(r.stderrText)")
            #expect(r.stderrText.contains("fleet_leader_elected"))
            // Exactly one host decided; each host carried its part out once.
            for h in ["h1", "h2", "h3"] {
                let log = try TestFiles.text("\(dir)/logs/\(h).log")
                #expect(log.components(separatedBy: "Host \(h) finished its part").count - 1 == 1, "\(h):\n\(log)")
            }
            let decisions =
                try ["h1", "h2", "h3"].map { try TestFiles.text("\(dir)/logs/\($0).log") }.joined()
                .components(separatedBy: " rollback_started: ").count - 1
            #expect(decisions == 1)
            // Every process is gone; the releases and etcd's data are removed, the logs and the state stay.
            #expect(Processes.mentioning(dir).isEmpty, "\(Processes.mentioning(dir))")
            #expect(!FileIO.exists("\(dir)/h1/releases") && !FileIO.exists("\(dir)/etcd"))
            #expect(FileIO.exists("\(dir)/h1/state"))
        }

        @Test func ctrlCStopsEveryHostInstanceAndEtcdMember() async throws {
            let dir = try ScratchDir("fleet-demo-int").path
            let log = dir + ".log"
            defer { unlink(log) }
            let demo = try ChildProcess([RepoPaths.binary, "demo", "--fleet", "2", "--work-dir", dir], log: log)
            defer { demo.stop() }
            try await waitUntil(
                "the fleet demo to reach release_known_good", every: .milliseconds(100),
                explain: { TestFiles.read(log) ?? "" }
            ) { (TestFiles.read(log) ?? "").contains("release_known_good") }
            #expect(!Processes.mentioning(dir + "/etcd").isEmpty)
            #expect(!Processes.mentioning(dir + "/h2/thresholds.json").isEmpty)
            kill(demo.pid, SIGINT)
            let end = await BlockingThread.run { demo.waitExit(timeout: .seconds(90)) }
            let text = (try? TestFiles.text(log)) ?? ""
            #expect(end == .exited(128 + SIGINT), "\(String(describing: end))\n\(text)")
            #expect(text.contains("interrupted"))
            #expect(!FileIO.exists(dir + "/h1/releases") && !FileIO.exists(dir + "/etcd"))
            #expect(Processes.mentioning(dir).isEmpty, "\(Processes.mentioning(dir))")
        }
    }
}

@Suite struct FleetDemoTests {
    @Test func withoutEtcdTheFleetDemoSaysHowToGetIt() async throws {
        let dir = try ScratchDir("fleet-demo-no-etcd").path
        let r = try await runRollbackd(
            ["demo", "--fleet", "2", "--etcd", dir + "/no-etcd", "--work-dir", dir], timeout: .seconds(60))
        #expect(r.termination == .exited(1), "\(r.stdoutText)\n\(r.stderrText)")
        #expect(r.stdoutText.contains("apt-get install etcd-server"), "\(r.stdoutText)")
        #expect(r.stdoutText.contains("make demo-fleet"), "\(r.stdoutText)")
        #expect(Processes.mentioning(dir).isEmpty)
    }

    @Test func fleetSizeIsChecked() async throws {
        let r = try await runRollbackd(["demo", "--fleet", "12"], timeout: .seconds(30))
        #expect(r.termination == .exited(2), "\(r.stderrText)")
        #expect(r.stderrText.contains("--fleet must be 2…9 hosts"), "\(r.stderrText)")
    }
}
