import Testing
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
import TestSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// Fleet mode against a real 3-member etcd on loopback: three hosts, each its own `rollbackd run` with its own
/// state directory, demo service, traffic and release tree (a `DaemonTests.Scene`). One leader decides on the
/// summed evidence; every host rolls back once; and the failure cases of the issue, each on its own cluster.
@Suite(.serialized, .enabled(if: EtcdCluster.runnable, Comment(rawValue: EtcdCluster.missing)))
struct FleetTests {
    final class Fleet {
        let etcd: EtcdCluster
        let name = "t\(UInt32.random(in: 0...UInt32.max))"
        var hosts: [DaemonTests.Scene] = []
        var daemons: [pid_t] = []
        var proxies: [Int: ServerProcess] = [:]

        /// `proxied`: hosts that reach etcd through a TCP forwarder the test can cut (SIGSTOP).
        init(hosts count: Int = 3, proxied: Set<Int> = []) async throws {
            etcd = try await EtcdCluster.start(members: 3)
            for i in 0..<count {
                let s = try DaemonTests.Scene()
                var endpoints = etcd.endpoints
                if proxied.contains(i) {
                    let proxy = try await ServerProcess.python(
                        "tcp_proxy.py", etcd.members.map { String($0.clientPort) })
                    proxies[i] = proxy
                    endpoints = [proxy.base]
                }
                let list = endpoints.map { "\"\($0)\"" }.joined(separator: ", ")
                let telemetry = try Loopback.freePort()
                try s.writeConfig(
                    interval: "1s",
                    top:
                        #", "fleet": {"endpoints": [\#(list)], "name": "\#(name)", "host": "h\#(i)", "leaseTTL": "5s"}, "telemetry": {"listen": "127.0.0.1:\#(telemetry)"}"#
                )
                hosts.append(s)
            }
        }

        func start(_ i: Int) async throws {
            try await hosts[i].startService(burst: 1, every: 0.05)
            daemons.append(try hosts[i].startDaemon())
        }

        func startAll() async throws {
            for i in hosts.indices { try await start(i) }
        }

        var logs: [String] { hosts.map(\.log) }

        func count(_ text: String) -> Int {
            logs.reduce(0) { $0 + $1.components(separatedBy: text).count - 1 }
        }

        /// The host whose journal says it leads (the last one elected).
        func leader() -> Int? {
            hosts.indices.filter { hosts[$0].log.contains("Host h\($0) leads the fleet") }.last
        }

        func waitFor(_ what: String, seconds: Double = generousWait, _ condition: () -> Bool) async throws {
            let logs = hosts.map { "\($0.dir)/daemon.log" }
            try await waitUntil(
                what, seconds: seconds, every: .milliseconds(100),
                explain: {
                    logs.enumerated().map { "--- h\($0.offset):\n" + (TestFiles.read($0.element) ?? "") }.joined(
                        separator: "\n")
                }
            ) { condition() }
        }

        /// The fleet's state as the leader wrote it in etcd.
        func fleetState() async throws -> EngineState? {
            let client = EtcdClient(endpoints: etcd.endpoints)
            guard let kv = try await client.get(FleetKeys(fleet: name).state) else { return nil }
            return try StateStore.decoder.decode(EngineState.self, from: Data(kv.value))
        }

        func deployAll(_ v: String, except: Set<Int> = []) {
            for i in hosts.indices where !except.contains(i) { hosts[i].deploy(v) }
        }

        func current(_ i: Int) -> String { hosts[i].current() }

        /// The host's `/metrics` page ("" when it does not answer).
        func metrics(_ i: Int) async -> String {
            guard case let .tcp(_, port)? = hostTelemetry(i),
                let page = try? await HTTPClient.shared.send(.get("http://127.0.0.1:\(port)/metrics")).get().text
            else { return "" }
            return page
        }

        /// Ticks the host's daemon has completed (its `/metrics`).
        func ticks(_ i: Int) async -> Int {
            let page = await metrics(i)
            for line in page.split(separator: "\n") where line.hasPrefix("rollbackd_tick_duration_seconds_count") {
                return Int(Double(line.split(separator: " ").last ?? "") ?? 0)
            }
            return 0
        }

        private func hostTelemetry(_ i: Int) -> TelemetryListen? {
            (try? ConfigFile.load(path: "\(hosts[i].dir)/thresholds.json").get())?.thresholds.telemetry?.listen
        }
    }

    @Test func oneLeaderDecidesOnTheSummedEvidenceAndEveryHostRollsBackOnce() async throws {
        let f = try await Fleet()
        try await f.startAll()
        try await f.waitFor("a leader") { f.leader() != nil }
        try await f.waitFor("v1 known-good for the fleet") { f.count("Release v1 is known-good") > 0 }
        let deployed = monotonicMs()
        f.deployAll("v2")
        try await f.waitFor("every host back on v1") { f.hosts.indices.allSatisfy { f.current($0).hasSuffix("/v1") } }
        let swapped = monotonicMs() - deployed
        try await f.waitFor("the fleet's verification") { f.count("verification_passed") > 0 }
        print("fleet of 3: deploy to the last host swapped back in \(swapped) ms")
        // One decision, one incident, every host carried it out once.
        #expect(f.count("rollback_started") == 1)
        for i in f.hosts.indices {
            #expect(f.hosts[i].log.components(separatedBy: "Host h\(i) finished its part").count - 1 == 1)
            #expect(f.hosts[i].log.contains("rolled back to v1"))
        }
        let state = try #require(try await f.fleetState())
        #expect(state.incidents.count == 1)
        #expect(state.ledger.release("v2")?.rolledBackFromAt != nil)
        // `rollbackd fleet status` reads the fleet from etcd: the leader, each host on v1, the standing decision.
        try await f.waitFor("every host's run reported") { f.count("finished its part") == 3 }
        // Who leads and who decided, as etcd holds them (a loaded machine may have moved the leadership meanwhile).
        let client = EtcdClient(endpoints: f.etcd.endpoints)
        let keys = FleetKeys(fleet: f.name)
        let leaderKey = try #require(try await client.get(keys.leader))
        let leaderNow = try #require(Int(leaderKey.text.dropFirst()))
        let decisionKey = try #require(try await client.get(keys.decision))
        let decision = try StateStore.decoder.decode(FleetDecision.self, from: Data(decisionKey.value))
        let shown = try await runRollbackd(["fleet", "status", "--config", "\(f.hosts[0].dir)/thresholds.json"])
        #expect(shown.termination == .exited(0), "\(shown.stderrText)")
        let text = shown.stdoutText
        #expect(text.contains("fleet \(f.name): leader h\(leaderNow), 3 hosts"), "\(text)")
        for i in 0..<3 {
            #expect(text.contains("  h\(i)\(i == leaderNow ? " [leader]" : ""): v1, last report"), "\(text)")
        }
        #expect(
            text.contains("standing decision: incident \(state.incidents[0].id) v2 -> v1, by \(decision.leader)"),
            "\(text)")
        #expect(decision.participants == ["h0", "h1", "h2"])
        #expect(text.components(separatedBy: ": succeeded: rolled back to v1").count - 1 == 3, "\(text)")
        // `status` says each host's role.
        try await f.waitFor("the leader's status says so") {
            (try? f.hosts[leaderNow].control([("command", .string("status"))]))?["report"]?["fleet"]?["role"]
                == .string("leader")
        }
        // Followers refuse commands that change the fleet's state, naming the leader.
        let follower = (leaderNow + 1) % 3
        let refused = try f.hosts[follower].control([("command", .string("pause")), ("for", .string("1m"))])
        #expect(refused["ok"] == .bool(false))
        #expect("\(refused)".contains("the leader is h\(leaderNow)"), "\(refused)")
    }

    @Test func aLeaderKilledMidRollbackIsReplacedAndTheRollbackCompletesOnce() async throws {
        let f = try await Fleet()
        // Each host's swap reloads through a gate the test opens: the rollback is mid-phase until then.
        for s in f.hosts { try s.writeConfig(interval: "1s", reload: s.gatedReload("go"), top: try Self.top(s)) }
        try await f.start(0)
        try await f.waitFor("h0 leads") { f.leader() == 0 }
        try await f.start(1)
        try await f.start(2)
        try await f.waitFor("v1 known-good for the fleet") { f.count("Release v1 is known-good") > 0 }
        f.deployAll("v2")
        try await f.waitFor("the leader's own rollback mid-phase") {
            f.hosts[0].log.contains("Host h0: phase reload started")
        }
        let killed = monotonicMs()
        f.hosts[0].killAndReap(f.daemons[0])
        try await f.waitFor("a new leader") { f.leader().map { $0 != 0 } ?? false }
        let failover = monotonicMs() - killed
        print("leader failover after kill -9: \(failover) ms (lease TTL 5 s, interval 1 s)")
        for s in f.hosts { s.release("go") }
        try await f.waitFor("h1 and h2 back on v1") { f.current(1).hasSuffix("/v1") && f.current(2).hasSuffix("/v1") }
        // h0 returns: it resumes its own run from its journal and finishes it.
        _ = try f.hosts[0].startDaemon(log: "daemon2.log")
        try await f.waitFor("h0 resumes and finishes") {
            (TestFiles.read("\(f.hosts[0].dir)/daemon2.log") ?? "").contains("Host h0 finished its part")
        }
        #expect(f.current(0).hasSuffix("/v1"))
        try await f.waitFor("h1 and h2 finished their parts") {
            f.hosts[1].log.contains("Host h1 finished its part") && f.hosts[2].log.contains("Host h2 finished its part")
        }
        let all = f.logs.joined() + (TestFiles.read("\(f.hosts[0].dir)/daemon2.log") ?? "")
        #expect(all.components(separatedBy: "rollback_started").count - 1 == 1, "one incident, one decision")
        // No phase completed twice on any host.
        for i in f.hosts.indices {
            let text = f.hosts[i].log + (i == 0 ? (TestFiles.read("\(f.hosts[0].dir)/daemon2.log") ?? "") : "")
            let completed = text.split(separator: "\n").filter {
                $0.contains("Host h\(i): phase") && $0.contains(" completed")
            }
            var seen = Set<String>()
            for line in completed {
                guard let rest = String(line).components(separatedBy: "Host h\(i): phase ").last else { continue }
                let words = rest.split(separator: " ")
                guard words.count > 1, words[1].hasPrefix("completed") else { continue }
                let name = String(words[0])
                #expect(
                    seen.insert(name).inserted, "h\(i) completed \(name) twice: \(completed.joined(separator: "\n"))")
            }
            #expect(seen == ["swap", "reload"], "h\(i) completed \(seen.sorted())")
        }
        let state = try #require(try await f.fleetState())
        #expect(state.incidents.count == 1)
    }

    static func top(_ s: DaemonTests.Scene) throws -> String {
        // The fleet and telemetry keys the scene's config already has, kept when the config is rewritten.
        let text = TestFiles.read("\(s.dir)/thresholds.json") ?? ""
        let parts = text.components(separatedBy: #", "fleet": "#)
        guard parts.count == 2 else { throw TestFailure("no fleet section in \(s.dir)") }
        return #", "fleet": "# + String(parts[1].dropLast())
    }

    @Test func oneEtcdMemberKilledChangesNothing() async throws {
        let f = try await Fleet()
        try await f.startAll()
        try await f.waitFor("a leader") { f.leader() != nil }
        try await f.waitFor("v1 known-good for the fleet") { f.count("Release v1 is known-good") > 0 }
        await f.etcd.kill(member: 0)
        f.deployAll("v2")
        try await f.waitFor("every host back on v1") { f.hosts.indices.allSatisfy { f.current($0).hasSuffix("/v1") } }
        #expect(f.count("fleet_partitioned") == 0)
        #expect(f.count("fleet_leader_lost") == 0)
        #expect(f.count("rollback_started") == 1)
    }

    @Test func aPartitionedHostNeverActsAloneAndCatchesUp() async throws {
        let f = try await Fleet(proxied: [2])
        try await f.start(0)
        try await f.waitFor("h0 leads") { f.leader() == 0 }
        try await f.start(1)
        try await f.start(2)
        try await f.waitFor("v1 known-good for the fleet") { f.count("Release v1 is known-good") > 0 }
        let proxy = try #require(f.proxies[2])
        kill(proxy.pid, SIGSTOP)
        try await f.waitFor("h2 partitioned") { f.hosts[2].log.contains("fleet_partitioned") }
        let status = try f.hosts[2].control([("command", .string("status"))])
        #expect("\(status)".contains("partitioned"), "\(status)")
        let page = await f.metrics(2)
        #expect(
            page.contains(#"rollbackd_fleet_role{service="demo",fleet="\#(f.name)",role="partitioned"} 1"#), "\(page)")
        f.deployAll("v2")
        try await f.waitFor("h0 and h1 back on v1") { f.current(0).hasSuffix("/v1") && f.current(1).hasSuffix("/v1") }
        try await f.waitFor("the fleet's verification") { f.count("verification_passed") > 0 }
        // h2 saw the bad release all along (five more of its ticks) and never acted alone.
        let before = await f.ticks(2)
        try await waitUntil("five more ticks on h2 while partitioned", seconds: generousWait) {
            await f.ticks(2) >= before + 5
        }
        #expect(f.current(2).hasSuffix("/v2"))
        #expect(!f.hosts[2].log.contains("Host h2 carries out"))
        kill(proxy.pid, SIGCONT)
        try await f.waitFor("h2 rejoins and applies the standing decision") { f.current(2).hasSuffix("/v1") }
        #expect(f.hosts[2].log.contains("fleet_rejoined"))
        #expect(f.count("rollback_started") == 1)
    }

    @Test func aPausedLeaderIsFencedOutWhenItWakes() async throws {
        let f = try await Fleet()
        try await f.start(0)
        try await f.waitFor("h0 leads") { f.leader() == 0 }
        try await f.start(1)
        try await f.start(2)
        try await f.waitFor("v1 known-good for the fleet") { f.count("Release v1 is known-good") > 0 }
        kill(f.daemons[0], SIGSTOP)
        try await f.waitFor("a new leader") { f.leader().map { $0 != 0 } ?? false }
        let newLeader = try #require(f.leader())
        f.deployAll("v2", except: [0])
        try await f.waitFor("the new leader's decision") { f.hosts[newLeader].log.contains("rollback_started") }
        kill(f.daemons[0], SIGCONT)
        try await f.waitFor("the old leader's write refused") { f.hosts[0].log.contains("its write was refused") }
        try await f.waitFor("h1 and h2 back on v1") { f.current(1).hasSuffix("/v1") && f.current(2).hasSuffix("/v1") }
        let state = try #require(try await f.fleetState())
        #expect(state.incidents.count == 1)
        #expect(f.count("rollback_started") == 1)
        let client = EtcdClient(endpoints: f.etcd.endpoints)
        let leaderKey = try #require(try await client.get(FleetKeys(fleet: f.name).leader))
        #expect(leaderKey.text == "h\(newLeader)")
    }

    @Test func withEtcdDownEveryHostIsBlindAndNothingRollsBack() async throws {
        let f = try await Fleet()
        try await f.startAll()
        try await f.waitFor("a leader") { f.leader() != nil }
        try await f.waitFor("v1 known-good for the fleet") { f.count("Release v1 is known-good") > 0 }
        for m in f.etcd.members.indices { await f.etcd.stop(member: m) }
        try await f.waitFor("every host partitioned") {
            f.hosts.allSatisfy { $0.log.contains("fleet_partitioned") }
        }
        f.deployAll("v2")
        // Ten more ticks on every host with v2 live (a host alone detects it in three or four at this traffic).
        let before = await (0..<3).asyncMap { await f.ticks($0) }
        try await waitUntil("ten more ticks on every host while etcd is down", seconds: generousWait) {
            let now = await (0..<3).asyncMap { await f.ticks($0) }
            return zip(now, before).allSatisfy { $0 >= $1 + 10 }
        }
        for i in f.hosts.indices {
            #expect(f.current(i).hasSuffix("/v2"), "h\(i) must not roll back without etcd")
            #expect(f.hosts[i].log.contains("cannot reach etcd"))
        }
        #expect(f.count("rollback_started") == 0)
        // etcd returns (the same members, data and leases): a leader leads again and the fleet rolls v2 back.
        // All at once: a member is healthy only once a quorum is back.
        let etcd = f.etcd
        try await withThrowingTaskGroup(of: Void.self) { group in
            for m in etcd.members.indices { group.addTask { try await etcd.restart(member: m) } }
            try await group.waitForAll()
        }
        try await f.waitFor("every host back on v1 after etcd returned") {
            f.hosts.indices.allSatisfy { f.current($0).hasSuffix("/v1") }
        }
        #expect(f.hosts.allSatisfy { $0.log.contains("fleet_rejoined") })
        #expect(f.count("rollback_started") == 1)
    }

    /// The `fleet.tls` files reach the etcd client: a host with the CA and its client certificate leads a fleet of
    /// members that require client certificates; a host without the certificate is refused, and says why.
    @Test func tlsWithAClientCertificate() async throws {
        let etcd = try await EtcdCluster.start(members: 1, tls: true)
        let tls = try #require(etcd.tls)
        let name = "tls\(UInt32.random(in: 0...UInt32.max))"
        let good = try DaemonTests.Scene()
        let bad = try DaemonTests.Scene()
        for (s, host, files) in [
            (
                good, "a",
                #"{"caFile": "\#(tls.caFile!)", "certFile": "\#(tls.certFile!)", "keyFile": "\#(tls.keyFile!)"}"#
            ),
            (bad, "b", #"{"caFile": "\#(tls.caFile!)"}"#),
        ] {
            try s.writeConfig(
                interval: "1s",
                top:
                    #", "fleet": {"endpoints": ["\#(etcd.endpoint(0))"], "name": "\#(name)", "host": "\#(host)", "leaseTTL": "3s", "tls": \#(files)}"#
            )
            try await s.startService(burst: 1, every: 0.2)
            try s.startDaemon()
        }
        try await good.waitFor("the host with a client certificate leads") {
            good.log.contains("Host a leads the fleet")
        }
        try await bad.waitFor("the host without one partitioned") { bad.log.contains("fleet_partitioned") }
        #expect(!bad.log.contains("leads the fleet"))
        #expect(bad.log.contains(etcd.endpoint(0)), "the refusal names the endpoint: \(bad.log)")
    }
}

extension Sequence {
    fileprivate func asyncMap<T>(_ f: (Element) async -> T) async -> [T] {
        var out: [T] = []
        for x in self { out.append(await f(x)) }
        return out
    }
}
