import Testing

@testable import RollbackCore

/// Triggers on counted metrics decide by evidence (the sequential test on errors of requests), not by how many
/// ticks the ratio looked bad: one error in eight requests never rolls back, a flood rolls back at its first tick,
/// and a quiet service's recovery is verified on what it sends.
@Suite @MainActor struct EngineEvidenceTests {
    /// The errors trigger without `breaches`/`clears`: the evidence decides alone.
    static func evidenceSpec(extra: String = "") -> TableSpec {
        var spec = TableSpec()
        spec.triggers = [
            #"{"name": "errors", "metric": "error_rate", "condition": {"above": 0.1}, "severity": "critical", "respondWithin": "2m", "automation": "full"\#(extra)}"#
        ]
        return spec
    }

    /// v1 clean with traffic until known-good, then v2 live.
    static func deployed(_ spec: TableSpec) throws -> Harness {
        var h = try Harness(spec)
        for _ in 0..<14 { h.tick(errors: 0, of: 20) }
        #expect(h.state.ledger.release("v1")?.isKnownGood == true)
        h.version = "v2"
        // The tick that first sees v2 counts what was served since the previous tick, partly by v1: the engine
        // counts nothing of it, so the scenarios start after it.
        h.tick(errors: 0, of: 0)
        return h
    }

    /// The window may still hold the previous release's clean requests (7 % here) while the test weighs the new
    /// release's own (60 %): the firing message shows the rate of the counts it decided on.
    @Test func theFiringMessageShowsTheRateTheTestWeighed() throws {
        var h = try Self.deployed(Self.evidenceSpec())
        let out = h.tick(["error_rate": .value(0.07)], counts: ["error_rate": Counts(events: 30, trials: 50)])
        let firing = try #require(out.events.first { $0.kind == .triggerFiring })
        #expect(
            firing.message.hasPrefix("Trigger errors is firing: 60% (30 of 50 since v2 went live;"), "\(firing.message)"
        )
        #expect(firing.value == 0.07)
    }

    @Test func theTickThatSeesANewReleaseChargesItNothing() throws {
        var spec = Self.evidenceSpec()
        spec.cap = "manual"
        var h = try Harness(spec)
        for _ in 0..<14 { h.tick(errors: 0, of: 20) }
        h.version = "v2"
        h.tick(errors: 0, of: 0)
        for _ in 0..<3 { h.tick(errors: 30, of: 50) }
        #expect(h.state.triggers["errors"]?.phase == .firing)
        // v3, the fix, goes live from outside: the tick that sees it still counts v2's last errors.
        h.version = "v3"
        h.tick(errors: 30, of: 50)
        for _ in 0..<5 { h.tick(errors: 0, of: 50) }
        #expect(h.state.triggers["errors"]?.phase == .ok)
        #expect(!h.events.contains { $0.kind == .triggerFiring && $0.fromVersion == "v3" })
        #expect(h.state.triggers["errors"]?.evidence?.total == Counts(events: 0, trials: 250))
    }

    @Test func aHealthyReleaseAtLowTrafficIsNeverRolledBack() throws {
        var h = try Self.deployed(Self.evidenceSpec())
        // A healthy release (3 % errors) at one request per tick for ten minutes. The first request fails, and
        // the 30 s window's ratio reads 100 %, then 50 %, 33 %, … above 10 % for the first ten ticks: the old rule
        // rolled this back. One error in a handful of requests is no evidence.
        var window: [Int64] = []
        for i in 0..<600 {
            let error: Int64 = i % 33 == 0 ? 1 : 0
            window.append(error)
            if window.count > 30 { window.removeFirst() }
            let ratio = Double(window.reduce(0, +)) / Double(window.count)
            h.tick(["error_rate": .value(ratio)], counts: ["error_rate": Counts(events: error, trials: 1)])
        }
        #expect(h.orders.isEmpty)
        #expect(h.count(.triggerFiring) == 0)
        let notFiring = h.events.filter { $0.kind == .triggerPending && $0.message.contains("insufficient evidence") }
        #expect(notFiring.count == 1, "said once: \(notFiring.map(\.message))")
        #expect(
            notFiring.first?.message.contains("1 of 1 since v2 went live") == true, "\(notFiring.first?.message ?? "")")
    }

    @Test func aSteadyTwelvePercentIsEvidenceInTheEnd() throws {
        var h = try Self.deployed(Self.evidenceSpec())
        // 1 error in 8, every tick: each tick alone is no evidence, but the rate really is above 10 %.
        var fired: Int?
        for i in 0..<600 where fired == nil {
            if h.tick(errors: 1, of: 8).rollback != nil { fired = i }
        }
        let tick = try #require(fired)
        #expect(tick > 10, "not on a handful of requests (fired at tick \(tick))")
    }

    @Test func aFloodOfErrorsRollsBackAtItsFirstTick() throws {
        var h = try Self.deployed(Self.evidenceSpec())
        let out = h.tick(errors: 30, of: 50)
        #expect(out.rollback?.from == "v2" && out.rollback?.to == "v1")
        let firing = try #require(h.events.first { $0.kind == .triggerFiring })
        #expect(firing.message.contains("30 of 50 since v2 went live; 99% evidence for"), "\(firing.message)")
        #expect(firing.extra["evidence_events"] == "30" && firing.extra["evidence_trials"] == "50")
        #expect(firing.extra["evidence_reached"] == "true")
        let decision = try #require(h.events.first { $0.kind == .decision })
        #expect(decision.message.contains("fired on v2 (30% (") == false, "\(decision.message)")
        #expect(decision.message.contains("(30 of 50 since v2 went live; 99% evidence for"), "\(decision.message)")
        #expect(decision.extra["evidence_trials"] == "50")
    }

    @Test func breachesSetByTheTableAreRequiredAsWell() throws {
        var h = try Self.deployed(Self.evidenceSpec(extra: #", "breaches": 3"#))
        #expect(h.tick(errors: 30, of: 50).rollback == nil)
        #expect(h.tick(errors: 30, of: 50).rollback == nil)
        #expect(h.tick(errors: 30, of: 50).rollback != nil)
    }

    @Test func aMetricWithoutCountsKeepsConsecutiveBreaches() throws {
        var h = try Self.deployed(Self.evidenceSpec())
        // The same trigger fed values only (no counts): the default K = 3 applies.
        #expect(h.tick(errors: 0.6).first?.rollback == nil)
        #expect(h.tick(errors: 0.6).first?.rollback == nil)
        #expect(h.tick(errors: 0.6).first?.rollback != nil)
    }

    @Test func aQuietRecoveryIsVerifiedOnWhatItSendsAndNeverHalts() throws {
        var h = try Self.deployed(Self.evidenceSpec())
        let order = try #require(h.tick(errors: 30, of: 50).rollback)
        h.events += h.engine.rollbackFinished(.succeeded, now: h.now)
        h.version = order.to
        // One clean request per tick: proving < 10 % at 99 % takes about 45, more than verifyFor (5 s) brings.
        var ticks = 0
        while h.state.verification != nil && ticks < 60 {
            h.tick(errors: 0, of: 1)
            ticks += 1
        }
        #expect(h.state.verification == nil, "verification never ended")
        #expect(h.state.halted == nil, "a quiet service must not halt automation")
        let passed = try #require(h.events.first { $0.kind == .verificationPassed })
        #expect(passed.message.contains("low traffic, no evidence of"), "\(passed.message)")
        #expect(ticks > 5, "verification waited for more traffic than verifyFor brought (\(ticks) ticks)")
        #expect(ticks <= 21, "and stopped at its bound, verifyFor + 3 × verifyFor (\(ticks) ticks)")
        #expect(h.state.triggers["errors"]?.phase == .ok)
    }

    @Test func aRecoveryWithEnoughTrafficClearsOnEvidence() throws {
        var h = try Self.deployed(Self.evidenceSpec())
        let order = try #require(h.tick(errors: 30, of: 50).rollback)
        h.events += h.engine.rollbackFinished(.succeeded, now: h.now)
        h.version = order.to
        h.tick(errors: 3, of: 10) // the tick that sees v1 again: partly v2's, not counted
        h.tick(errors: 0, of: 100)
        #expect(h.state.triggers["errors"]?.phase == .ok, "100 clean requests are evidence of < 10 %")
        for _ in 0..<6 { h.tick(errors: 0, of: 100) }
        #expect(h.count(.verificationPassed) == 1)
        #expect(h.events.first { $0.kind == .verificationPassed }?.message.contains("low traffic") == false)
    }

    @Test func aBadRecoveryStillFailsVerification() throws {
        var h = try Self.deployed(Self.evidenceSpec())
        let order = try #require(h.tick(errors: 30, of: 50).rollback)
        h.events += h.engine.rollbackFinished(.succeeded, now: h.now)
        h.version = order.to
        for _ in 0..<8 { h.tick(errors: 30, of: 50) }
        #expect(h.count(.verificationFailed) == 1)
        #expect(h.state.halted != nil)
    }
}

/// A bound on a scraped P95 is the count question "more than 5 % of requests slower than the bound", asked of the
/// histogram's bucket counts at the first boundary at or above the bound.
@Suite struct EngineQuantileEvidenceTests {
    static func spec(bound: Double) -> TableSpec {
        var spec = TableSpec()
        spec.triggers = [
            #"{"name": "slow", "metric": "latency", "condition": {"above": \#(bound)}, "severity": "high", "respondWithin": "5m", "automation": "full"}"#
        ]
        return spec
    }

    /// One tick of `total` requests of which `slow` took longer than 0.5 s and `within` between 0.1 and 0.5 s
    /// (buckets 0.1, 0.5, 1, +Inf).
    static func buckets(total: Double, slow: Double, within: Double = 0) -> [HistogramBucket] {
        [
            HistogramBucket(upperBound: 0.1, count: total - slow - within),
            HistogramBucket(upperBound: 0.5, count: total - slow),
            HistogramBucket(upperBound: 1.0, count: total), HistogramBucket(upperBound: .infinity, count: total),
        ]
    }

    static func tick(_ h: inout Harness, total: Double, slow: Double, within: Double = 0) -> EngineOutput {
        let b = buckets(total: total, slow: slow, within: within)
        let p95 = histogramQuantile(0.95, b).value
        return h.tick(["latency": .value(p95), "error_rate": .value(0)], histograms: ["latency": b])
    }

    @Test func theCountsSlowerThanTheBoundaryAtOrAboveTheBoundDecide() throws {
        #expect(
            Counts.slower(than: 0.3, in: Self.buckets(total: 100, slow: 7))?.counts == Counts(events: 7, trials: 100))
        #expect(Counts.slower(than: 0.3, in: Self.buckets(total: 100, slow: 7))?.boundary == 0.5)
        #expect(Counts.slower(than: 2, in: Self.buckets(total: 100, slow: 7))?.boundary == .infinity)
        #expect(Counts.slower(than: 0.3, in: Array(Self.buckets(total: 100, slow: 7).dropLast())) == nil)

        var h = try Harness(Self.spec(bound: 0.3))
        for _ in 0..<14 { _ = Self.tick(&h, total: 100, slow: 1) }
        h.version = "v2"
        // 3 % slower than 500 ms: P95 reads 100 ms, and there is no evidence of more than 5 % slow requests.
        for _ in 0..<120 { #expect(Self.tick(&h, total: 100, slow: 3).rollback == nil) }
        // 40 % slower: the P95 is above the bound and the counts say so at once.
        h.version = "v3"
        _ = Self.tick(&h, total: 100, slow: 0) // the tick that first sees v3 is not counted
        let out = Self.tick(&h, total: 100, slow: 40)
        let firing = try #require(out.events.first { $0.kind == .triggerFiring }, "\(out.events.map(\.message))")
        #expect(firing.message.contains("40 of 100 slower than 500ms since v3 went live"), "\(firing.message)")
    }
}

/// "P95 above 2 × the previous release's P95" on bucket counts: the previous release's histogram bounds its P95
/// (upper confidence bound at α/2), and the live requests slower than twice that bound are the counts.
@Suite struct EngineRelativeLatencyEvidenceTests {
    static func deployed() throws -> Harness {
        var spec = TableSpec()
        spec.triggers = [
            #"{"name": "slower", "metric": "latency", "condition": {"aboveBaseline": 2.0}, "severity": "high", "respondWithin": "5m", "automation": "full"}"#
        ]
        var h = try Harness(spec)
        // v1: 2 % of 100 requests a tick slower than 100 ms (within 500 ms): its P95 is at most 100 ms.
        for _ in 0..<14 { _ = EngineQuantileEvidenceTests.tick(&h, total: 100, slow: 0, within: 2) }
        #expect(h.state.ledger.release("v1")?.isKnownGood == true)
        h.version = "v2"
        _ = EngineQuantileEvidenceTests.tick(&h, total: 100, slow: 0) // the tick that first sees v2 is not counted
        return h
    }

    @Test func theBaselineHistogramBoundsThePreviousQuantile() throws {
        let h = try Self.deployed()
        let kept = try #require(h.state.ledger.release("v2")?.baselineHistograms?["latency"])
        #expect(kept.last?.count == 1400, "\(kept)")
        let bound = try #require(
            BernoulliMath.quantileBound(kept, quantile: 0.95, upper: true, delta: 0.005))
        #expect(bound == 0.1)
        let t = try #require(h.engine.config.triggers.first)
        let rule = EffectiveTrigger(trigger: t, thresholds: h.engine.config).rule
        #expect(rule.hasPrefix("evidence: latency > 200% of baseline at 99%"), "\(rule)")
    }

    @Test func aReleaseWithFewSlowRequestsIsLeftAlone() throws {
        var h = try Self.deployed()
        // 3 % slower than 500 ms: fewer than 5 % slower than twice the previous P95's bound (rounded up to 500 ms).
        for _ in 0..<600 { #expect(EngineQuantileEvidenceTests.tick(&h, total: 100, slow: 3).rollback == nil) }
    }

    @Test func aReleaseMuchSlowerThanThePreviousIsRolledBackOnItsCounts() throws {
        var h = try Self.deployed()
        var fired: Int?
        for i in 0..<10 where fired == nil {
            if EngineQuantileEvidenceTests.tick(&h, total: 100, slow: 40).rollback != nil { fired = i }
        }
        #expect(fired == 0, "fired at \(String(describing: fired))")
        let firing = try #require(h.events.first { $0.kind == .triggerFiring })
        #expect(
            firing.message.contains(
                "40 of 100 slower than 500ms since v2 went live (the previous release's quantile is at most 100ms over 1400 requests)"
            ), "\(firing.message)")
    }
}

/// Probe latencies are measured, not bucketed: the counts slower than any bound are exact.
@Suite struct ExactLatencyCountsTests {
    @Test(arguments: 0..<20) func theCountSlowerThanAnyBoundIsExact(seed: Int) throws {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        // Latencies on a coarse grid (ties happen), and bounds on it, between it and beyond it.
        let values = (0..<(1 + Int(next() % 40))).map { _ in Double(next() % 20) / 100 }
        let buckets = HistogramBucket.exact(values)
        for bound in stride(from: -0.01, through: 0.25, by: 0.005) {
            let got = try #require(Counts.slower(than: bound, in: buckets))
            let slower = values.filter { $0 > bound }.count
            #expect(got.counts == Counts(events: Int64(slower), trials: Int64(values.count)), "bound \(bound)")
        }
    }

    @Test func aProbeLatencyBoundIsSaidToBeExact() throws {
        let json = """
            {
              "service": "svc", "interval": "1s", "automation": "full",
              "metrics": {
                "latency": {"type": "probe", "targets": ["http://127.0.0.1:1/"], "measure": "latencyQuantile", "quantile": 0.95, "window": "30s"}
              },
              "triggers": [{"name": "slow", "metric": "latency", "condition": {"above": 0.3}, "severity": "high", "respondWithin": "5m", "automation": "full"}],
              "rollback": {"strategy": "command", "command": {"argv": ["/bin/true"]}}
            }
            """
        let t = try Thresholds.load(text: json, file: "test.json").thresholds
        let rule = try #require(t.effectiveTriggers.first).rule
        #expect(rule == "evidence: latency > 300ms at 99% (more than 5% of probes slower than 300ms)", "\(rule)")
    }
}

/// "More than 2 × the previous release's error rate" on counts: the live release's counts against the baseline
/// release's, with the baseline's own uncertainty (not a median of ratios).
@Suite @MainActor struct EngineRelativeEvidenceTests {
    nonisolated static let spec: TableSpec = {
        var spec = TableSpec()
        spec.triggers = [
            #"{"name": "worse", "metric": "error_rate", "condition": {"aboveBaseline": 2.0}, "severity": "high", "respondWithin": "5m", "automation": "full"}"#
        ]
        return spec
    }()

    /// v1 at 2 % errors (100 requests a tick) until known-good, then `v2` live.
    static func deployed() throws -> Harness {
        var h = try Harness(spec)
        for _ in 0..<14 { h.tick(errors: 2, of: 100) }
        #expect(h.state.ledger.release("v1")?.isKnownGood == true)
        h.version = "v2"
        h.tick(errors: 0, of: 0) // the tick that first sees v2 is not counted
        return h
    }

    @Test func aReleaseNoWorseThanTwiceTheBaselineIsLeftAlone() throws {
        var h = try Self.deployed()
        // 3 %: 1.5 × the baseline, for ten minutes.
        for _ in 0..<600 { h.tick(errors: 3, of: 100) }
        #expect(h.orders.isEmpty)
        let baseline = try #require(h.state.ledger.release("v2")?.baselineCounts?["error_rate"])
        #expect(baseline.trials >= 1000 && baseline.events == baseline.trials / 50, "\(baseline)")
    }

    @Test func aReleaseFiveTimesWorseIsRolledBackOnItsCounts() throws {
        var h = try Self.deployed()
        // 10 %: five times v1's 2 %. The null is 2 × the baseline's upper bound (28 errors of 1,400 requests bound
        // the baseline at about 3.8 %), so 10 % takes a few hundred requests to be told from 7.6 %.
        var fired: Int?
        for i in 0..<40 where fired == nil {
            if h.tick(errors: 10, of: 100).rollback != nil { fired = i }
        }
        let tick = try #require(fired)
        #expect(tick >= 2 && tick < 30, "fired at tick \(tick)")
        let firing = try #require(h.events.first { $0.kind == .triggerFiring })
        #expect(firing.message.contains("against the previous release's 28 of 1400"), "\(firing.message)")
    }

    @Test func aFloodAgainstALowBaselineIsRolledBackAtOnce() throws {
        var h = try Self.deployed()
        #expect(h.tick(errors: 40, of: 100).rollback != nil)
    }
}
