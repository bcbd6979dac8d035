import Testing

@testable import RollbackCore

/// Fleet mode's pure parts: the leader sums the hosts' counts exactly (each host tick once, however the leader's
/// ticks fall against the hosts'), picks the fleet's version, aggregates values by rule, and knows when a fleet
/// rollback is finished.
@Suite struct FleetEvidenceTests {
    static let t0 = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)

    static func metrics() throws -> [MetricDefinition] {
        try TableSpec().thresholds().metrics
    }

    /// A host's publisher as `FleetMember` runs it: a numbered tick per sample, the last `keptTicks` in the report.
    struct Publisher {
        var host: String
        var epoch = "e1"
        var version: String? = "v2"
        var seq: Int64 = 0
        var ticks: [HostTick] = []
        var published = Counts.zero

        init(_ host: String) { self.host = host }

        mutating func tick(_ c: Counts, at: Timestamp) {
            seq += 1
            ticks.append(HostTick(seq: seq, at: at, counts: ["error_rate": c], histograms: [:]))
            if ticks.count > HostReport.keptTicks { ticks.removeFirst() }
            published += c
        }

        func report(at: Timestamp, value: Double = 0.1) -> HostReport {
            HostReport(
                host: host, epoch: epoch, at: at, version: version, samples: ["error_rate": .value(value)],
                ticks: ticks)
        }
    }

    /// Random interleavings of three hosts' ticks and the leader's reads (seeded): the leader's sum equals what the
    /// hosts published after its first read, exactly, as long as it reads at least once every `keptTicks` host ticks.
    @Test(arguments: [201, 202, 203, 204]) func countsAddUpExactlyWhateverTheInterleaving(seed: UInt64) throws {
        var rng = Xoshiro256(seed: seed)
        let metrics = try Self.metrics()
        var hosts = ["a", "b", "c"].map(Publisher.init)
        var leader = FleetEvidence()
        var summed = Counts.zero
        var now = Self.t0
        _ = leader.view(of: hosts.map { $0.report(at: now) }, metrics: metrics, ledger: ReleaseLedger(), at: now)
        let before = hosts.map(\.published)
        var sinceRead = [0, 0, 0]
        for _ in 0..<2000 {
            now = now + .ms(50)
            let i = Int(rng.next() % 4)
            if i < 3, sinceRead[i] < HostReport.keptTicks {
                let trials = Int64(rng.next() % 20)
                hosts[i].tick(Counts(events: Int64(rng.next() % UInt64(trials + 1)), trials: trials), at: now)
                sinceRead[i] += 1
            } else {
                let v = leader.view(
                    of: hosts.map { $0.report(at: now) }, metrics: metrics, ledger: ReleaseLedger(), at: now)
                summed += v.observation.counts["error_rate"] ?? .zero
                sinceRead = [0, 0, 0]
            }
        }
        let v = leader.view(of: hosts.map { $0.report(at: now) }, metrics: metrics, ledger: ReleaseLedger(), at: now)
        summed += v.observation.counts["error_rate"] ?? .zero
        let expected = zip(hosts, before).reduce(Counts.zero) { acc, p in
            acc + Counts(events: p.0.published.events - p.1.events, trials: p.0.published.trials - p.1.trials)
        }
        #expect(summed == expected)
        #expect(summed.trials > 1000)
    }

    @Test func aNewLeaderCountsFromTheHostsNextTickAndARestartedHostFromItsFirst() throws {
        let metrics = try Self.metrics()
        var a = Publisher("a")
        a.tick(Counts(events: 5, trials: 10), at: Self.t0)
        var leader = FleetEvidence()
        // What the previous leader may already have added is not added again.
        var v = leader.view(of: [a.report(at: Self.t0)], metrics: metrics, ledger: ReleaseLedger(), at: Self.t0)
        #expect(v.observation.counts["error_rate"] == nil)
        a.tick(Counts(events: 1, trials: 4), at: Self.t0 + .seconds(1))
        v = leader.view(of: [a.report(at: Self.t0)], metrics: metrics, ledger: ReleaseLedger(), at: Self.t0)
        #expect(v.observation.counts["error_rate"] == Counts(events: 1, trials: 4))
        // The same report read again adds nothing.
        v = leader.view(of: [a.report(at: Self.t0)], metrics: metrics, ledger: ReleaseLedger(), at: Self.t0)
        #expect(v.observation.counts["error_rate"] == nil)
        // The host's daemon restarts: its tick numbers start again, and all of them are new.
        var restarted = Publisher("a")
        restarted.epoch = "e2"
        restarted.tick(Counts(events: 2, trials: 3), at: Self.t0 + .seconds(2))
        v = leader.view(of: [restarted.report(at: Self.t0)], metrics: metrics, ledger: ReleaseLedger(), at: Self.t0)
        #expect(v.observation.counts["error_rate"] == Counts(events: 2, trials: 3))
    }

    @Test func theFleetVersionIsTheMostCommonAndOnlyItsHostsGiveEvidence() throws {
        let metrics = try Self.metrics()
        var a = Publisher("a")
        var b = Publisher("b")
        var c = Publisher("c")
        c.version = "v1"
        var leader = FleetEvidence()
        var ledger = ReleaseLedger()
        ledger.releases = [
            Release(version: "v1", firstSeenAt: Self.t0, liveSince: Self.t0, baseline: [:])
        ]
        _ = leader.view(of: [a, b, c].map { $0.report(at: Self.t0) }, metrics: metrics, ledger: ledger, at: Self.t0)
        for p in [0, 1, 2] {
            let counts = Counts(events: Int64(p), trials: 10)
            switch p {
            case 0: a.tick(counts, at: Self.t0)
            case 1: b.tick(counts, at: Self.t0)
            default: c.tick(counts, at: Self.t0)
            }
        }
        let v = leader.view(
            of: [a, b, c].map { $0.report(at: Self.t0) }, metrics: metrics, ledger: ledger, at: Self.t0)
        #expect(v.observation.version == "v2")
        #expect(v.hosts == ["a", "b"])
        #expect(v.observation.counts["error_rate"] == Counts(events: 1, trials: 20))
        // A tie (one host each) goes to the release the ledger has not seen: the newer one of a rolling deploy.
        b.version = "v1"
        let tie = FleetEvidence.fleetVersion([a, b].map { $0.report(at: Self.t0) }, ledger: ledger)
        #expect(tie == "v2")
    }

    @Test func valuesAggregateByRuleAndAHostWithoutDataAddsNothing() throws {
        let metrics = try Self.metrics()
        var a = Publisher("a")
        var b = Publisher("b")
        var leader = FleetEvidence()
        _ = leader.view(
            of: [a.report(at: Self.t0), b.report(at: Self.t0)], metrics: metrics, ledger: ReleaseLedger(), at: Self.t0)
        a.tick(Counts(events: 1, trials: 10), at: Self.t0)
        b.tick(Counts(events: 27, trials: 30), at: Self.t0)
        var ra = a.report(at: Self.t0, value: 0.1)
        var rb = b.report(at: Self.t0, value: 0.9)
        ra.samples["latency"] = .value(0.2)
        rb.samples["latency"] = .noData(reason: "connection refused")
        ra.samples["security"] = .noData(reason: "timed out")
        rb.samples["security"] = .noData(reason: "exit 2")
        let v = leader.view(of: [ra, rb], metrics: metrics, ledger: ReleaseLedger(), at: Self.t0)
        // A ratio weighted by each host's requests this tick: (0.1·10 + 0.9·30) / 40.
        #expect(v.observation.samples["error_rate"] == .value(0.7))
        // A latency quantile: the highest host that has one; b's missing value is no failure.
        #expect(v.observation.samples["latency"] == .value(0.2))
        #expect(v.observation.samples["security"] == .noData(reason: "a: timed out; b: exit 2"))
    }

    @Test func aRollbackIsFinishedWhenEveryParticipantReportedOrLeft() {
        let order = RollbackOrder(incident: "i1", from: "v2", to: "v1", automatic: true, orderedAt: Self.t0)
        let d = FleetDecision(order: order, leader: "a", token: 7, participants: ["a", "b", "c"])
        func run(_ h: String, _ s: HostRun.State, _ detail: String = "") -> HostRun {
            HostRun(host: h, incident: "i1", state: s, detail: detail, at: Self.t0)
        }
        let live: Set = ["a", "b", "c"]
        #expect(d.result(runs: ["a": run("a", .succeeded), "b": run("b", .running)], live: live) == nil)
        #expect(
            d.result(
                runs: ["a": run("a", .succeeded), "b": run("b", .succeeded), "c": run("c", .succeeded)], live: live)
                == .succeeded)
        // c left the fleet before it reported: it applies the decision on its return; the rest finished.
        #expect(
            d.result(runs: ["a": run("a", .succeeded), "b": run("b", .succeeded)], live: ["a", "b"]) == .succeeded)
        guard
            case let .failed(why)? = d.result(
                runs: [
                    "a": run("a", .succeeded), "b": run("b", .failed, "phase swap: EACCES"), "c": run("c", .succeeded),
                ],
                live: live)
        else {
            Issue.record("a failed host must fail the fleet's rollback")
            return
        }
        #expect(why.contains("b: phase swap: EACCES") && why.contains("rolled back: a, c"), "\(why)")
        guard case .failed? = d.result(runs: [:], live: []) else {
            Issue.record("nobody carried it out: failed")
            return
        }
        #expect(d.applies(toLive: "v2", finished: false))
        #expect(!d.applies(toLive: "v2", finished: true))
        #expect(!d.applies(toLive: "v1", finished: false))
    }

    /// Three hosts at low traffic: each alone holds too little evidence to act on; the leader, on their sum, rolls
    /// back the bad release.
    @Test func theSummedEvidenceDecidesWhereOneHostCouldNot() throws {
        var spec = TableSpec()
        spec.triggers = [
            #"{"name": "errors", "metric": "error_rate", "condition": {"above": 0.1}, "severity": "critical", "respondWithin": "2m", "automation": "full"}"#
        ]
        let metrics = try spec.thresholds().metrics
        var single = try Harness(spec)
        var fleet = try Harness(spec)
        for _ in 0..<14 {
            single.tick(errors: 0, of: 20)
            fleet.tick(errors: 0, of: 60)
        }
        single.version = "v2"
        fleet.version = "v2"
        single.tick(errors: 0, of: 0)
        fleet.tick(errors: 0, of: 0)
        var hosts = ["a", "b", "c"].map(Publisher.init)
        var leader = FleetEvidence()
        _ = leader.view(
            of: hosts.map { $0.report(at: fleet.now) }, metrics: metrics, ledger: fleet.state.ledger, at: fleet.now)
        var fleetTick: Int?
        var singleTick: Int?
        for n in 1...12 {
            // Each host sees 2 requests a tick, one of them failed (50 %).
            for i in hosts.indices { hosts[i].tick(Counts(events: 1, trials: 2), at: fleet.now) }
            let v = leader.view(
                of: hosts.map { $0.report(at: fleet.now, value: 0.5) }, metrics: metrics, ledger: fleet.state.ledger,
                at: fleet.now)
            let out = fleet.tick(v.observation.samples, counts: v.observation.counts)
            if out.rollback != nil, fleetTick == nil { fleetTick = n }
            if single.tick(errors: 1, of: 2).rollback != nil, singleTick == nil { singleTick = n }
        }
        let f = try #require(fleetTick)
        #expect(f < (singleTick ?? 13), "fleet \(f), one host \(singleTick.map(String.init) ?? "never")")
    }
}

@Suite struct FleetConfigTests {
    static func table(_ fleet: String, interval: String = "5s") -> String {
        """
        {"service": "shop", "interval": "\(interval)",
         "metrics": {"up": {"type": "prometheus", "url": "http://127.0.0.1:9090", "query": "up"}},
         "triggers": [{"name": "down", "metric": "up", "condition": {"below": 1}, "severity": "high", "respondWithin": "5m", "automation": "manual"}],
         "rollback": {"strategy": "command", "command": {"argv": ["/bin/true"]}},
         "fleet": \(fleet)}
        """
    }

    @Test func defaultsAreTheServiceNameTheHostnameAndTenSeconds() throws {
        let loaded = try Thresholds.load(text: Self.table(#"{"endpoints": ["http://127.0.0.1:2379"]}"#), file: "t.json")
        let f = try #require(loaded.thresholds.fleet)
        #expect(f.name == "shop" && f.host == nil && f.leaseTTL == .seconds(10) && f.tls == nil)
        #expect(loaded.warnings.isEmpty)
        #expect(FleetKeys(fleet: f.name).leader == "/rollbackd/fleets/shop/control/leader")
    }

    @Test func aLeaseShorterThanTwoIntervalsIsAWarning() throws {
        let loaded = try Thresholds.load(
            text: Self.table(#"{"endpoints": ["http://127.0.0.1:2379"], "leaseTTL": "8s"}"#), file: "t.json")
        #expect(
            loaded.warningLines == [
                "t.json: fleet.leaseTTL: 8s is shorter than two intervals (10s): one slow tick lets this host's lease expire, and the fleet sees it leave"
            ])
    }

    @Test func aHostNameMustFitInAnEtcdKey() {
        #expect(throws: ConfigError.self) {
            try Thresholds.load(
                text: Self.table(#"{"endpoints": ["http://127.0.0.1:2379"], "host": "web 1/a"}"#), file: "t.json")
        }
    }
}
