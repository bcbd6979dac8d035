import FoundationEssentials
import RealModule
import Testing
@testable import RollbackCore

/// Unit tests of ``Counts`` and ``EvidenceTest``: exact arithmetic, floods, edge thresholds, persistence. The
/// statistical behaviour is in EvidenceMonteCarloTests and EvidenceDelayTests.
@Suite struct CountsTests {
    @Test func countsAddExactly() {
        var rng = Xoshiro256(seed: 1)
        var sum = Counts.zero
        var events: Int64 = 0, trials: Int64 = 0
        for _ in 0..<1000 {
            let t = Int64(rng.next() % 1_000_000_000)
            let e = Int64(rng.next() % UInt64(t + 1))
            sum += Counts(events: e, trials: t)
            events += e
            trials += t
        }
        #expect(sum == Counts(events: events, trials: trials))
        #expect(Counts(events: 1, trials: 2) + Counts(events: 3, trials: 4) == Counts(events: 4, trials: 6))
    }

    @Test func sumsSaturateInsteadOfTrapping() {
        let big = Counts(events: .max - 1, trials: .max - 1)
        #expect(big + Counts(events: 5, trials: 5) == Counts(events: .max, trials: .max))
        #expect(Counts(events: .min + 1, trials: 0) + Counts(events: -5, trials: 0) == Counts(events: .min, trials: 0))
    }

    @Test func ratioAndClamping() {
        #expect(Counts.zero.ratio == nil)
        #expect(Counts(events: 1, trials: 8).ratio == 0.125)
        #expect(Counts(events: 9, trials: 8).clamped == Counts(events: 8, trials: 8))
        #expect(Counts(events: -3, trials: -2).clamped == .zero)
        #expect(Counts(events: 31, trials: 53).description == "31 of 53")
    }
}

@Suite struct EvidenceTestTests {
    static let edgeThresholds: [Double] = [
        0, 1e-300, 1e-12, 1e-9, 0.001, 0.5, 0.999, 1 - 1e-12, 1 - 1e-17, 1, -0.5, 2, .nan, .infinity,
    ]

    @Test func beforeAnyObservationThereIsNoEvidence() {
        let t = EvidenceTest(threshold: 0.1, direction: .above)
        #expect(!t.reached)
        #expect(t.logEvidence == -.infinity)
        #expect(t.strength == 0)
        #expect(t.total == .zero && t.recent == .zero)
    }

    @Test func ticksWithoutTrafficNeverReachAnything() {
        // Only restart weights arrive, and they sum to at most 1: M ≤ 1, log M ≤ 0.
        for direction in EvidenceTest.Direction.allCases {
            var t = EvidenceTest(threshold: 0.1, direction: direction)
            for tick in 1...10_000 { t.observe(.zero, elapsedMs: Int64(tick) * 5000) }
            #expect(!t.reached)
            #expect(t.logEvidence <= 0)
            #expect(t.strength == 0)
        }
    }

    @Test func oneErrorInEightIsNotEvidence() {
        // The issue: 1 of 8 reads as 12.5 % > 10 %, three ticks in a row.
        var t = EvidenceTest(threshold: 0.1, direction: .above)
        for tick in 1...3 { t.observe(Counts(events: 1, trials: 8), elapsedMs: Int64(tick) * 5000) }
        #expect(!t.reached)
        #expect(t.strength < 0.5)
        #expect(t.total == Counts(events: 3, trials: 24))
    }

    @Test(arguments: [Int64(100_000), 100_000_000_000])
    func aFloodStaysFinite(n: Int64) {
        for direction in EvidenceTest.Direction.allCases {
            for events in [0, n / 10, n / 2, n] {
                var t = EvidenceTest(threshold: 0.1, direction: direction)
                t.observe(Counts(events: events, trials: n), elapsedMs: 5000)
                t.observe(Counts(events: events, trials: n), elapsedMs: 15_000)
                #expect(t.logEvidence.isFinite, "\(direction) \(events)/\(n)")
                #expect(t.strength >= 0 && t.strength <= 1)
                #expect(t.total == Counts(events: 2 * events, trials: 2 * n))
            }
            var allBad = EvidenceTest(threshold: 0.1, direction: direction)
            allBad.observe(Counts(events: direction == .above ? n : 0, trials: n), elapsedMs: 5000)
            #expect(allBad.reached && allBad.strength == 1)
            // A bad flood followed by a good one: the good one's own restart takes over, still finite.
            allBad.observe(Counts(events: direction == .above ? 0 : n, trials: n), elapsedMs: 15_000)
            #expect(allBad.logEvidence.isFinite)
        }
    }

    @Test(arguments: edgeThresholds)
    func edgeThresholdsGiveFiniteAlternativesStrictlyInside(threshold: Double) throws {
        for direction in EvidenceTest.Direction.allCases {
            let t = EvidenceTest(threshold: threshold, direction: direction)
            #expect(t.threshold > 0 && t.threshold < 1)
            for alt in EvidenceTest.alternatives(p0: t.threshold, direction: direction) {
                #expect(alt.logRatioEvent.isFinite && alt.logRatioNonEvent.isFinite)
                // p1 inside (0, 1) and on the tested side: an event counts for `above`, against `below`.
                #expect(direction == .above ? alt.logRatioEvent > 0 : alt.logRatioEvent < 0)
                #expect(direction == .above ? alt.logRatioNonEvent < 0 : alt.logRatioNonEvent > 0)
            }
            var fed = t
            fed.observe(Counts(events: 500, trials: 1000), elapsedMs: 5000)
            fed.observe(Counts(events: 100_000, trials: 100_000), elapsedMs: 10_000)
            fed.observe(Counts(events: 0, trials: 100_000), elapsedMs: 20_000)
            #expect(fed.logEvidence.isFinite, "\(threshold) \(direction)")
            _ = try JSONEncoder().encode(fed) // nothing non-finite to refuse
        }
    }

    @Test func aThresholdOfZeroFiresOnTheSecondError() {
        var t = EvidenceTest(threshold: 0, direction: .above)
        t.observe(Counts(events: 1, trials: 1), elapsedMs: 5000)
        #expect(!t.reached)
        t.observe(Counts(events: 1, trials: 1), elapsedMs: 10_000)
        #expect(t.reached)
    }

    @Test func aRateThatCannotBeExceededNeverFires() {
        // "above 100 %" and "below 0 %": even a flood of the worst outcome is no evidence.
        var above = EvidenceTest(threshold: 1, direction: .above)
        var below = EvidenceTest(threshold: 0, direction: .below)
        for tick in 1...100 {
            above.observe(Counts(events: 1_000_000, trials: 1_000_000), elapsedMs: Int64(tick) * 5000)
            below.observe(Counts(events: 0, trials: 1_000_000), elapsedMs: Int64(tick) * 5000)
        }
        // The threshold is tested as 1 − 1e-9 (0 as 1e-9): 10^8 outcomes move it by about 0.1 nat.
        #expect(!above.reached && !below.reached)
        #expect(above.strength < 0.5 && below.strength < 0.5)
    }

    @Test func inconsistentCountsAreClamped() {
        var a = EvidenceTest(threshold: 0.1, direction: .above)
        var b = a
        a.observe(Counts(events: 12, trials: 10), elapsedMs: 5000)
        a.observe(Counts(events: -1, trials: -4), elapsedMs: 10_000)
        b.observe(Counts(events: 10, trials: 10), elapsedMs: 5000)
        b.observe(.zero, elapsedMs: 10_000)
        #expect(a == b)
    }

    @Test func aClockGoingBackwardsCreditsNoRestart() {
        var a = EvidenceTest(threshold: 0.1, direction: .above)
        a.observe(Counts(events: 1, trials: 10), elapsedMs: 60_000)
        var b = a
        b.observe(Counts(events: 1, trials: 10), elapsedMs: 60_000)
        a.observe(Counts(events: 1, trials: 10), elapsedMs: -5_000)
        #expect(a == b)
    }

    @Test func strengthIsTheConfidenceReached() {
        var t = EvidenceTest(threshold: 0.1, direction: .above, confidence: 0.99)
        var tick: Int64 = 0
        while !t.reached {
            tick += 1
            t.observe(Counts(events: 1, trials: 2), elapsedMs: tick * 5000)
            let expected = max(0, 1 - Double.exp(-t.logEvidence))
            #expect(abs(t.strength - expected) < 1e-12)
        }
        #expect(t.strength >= 0.99)
        // The baseline-relative test keeps α/2 for the bound: strength 1 − α/2 − 1/M.
        var rel = EvidenceTest(baseline: Counts(events: 5, trials: 1000), factor: 2, direction: .above)
        rel.observe(Counts(events: 400, trials: 1000), elapsedMs: 5000)
        #expect(rel.reached)
        #expect(abs(rel.strength - (1 - 0.005 - Double.exp(-rel.logEvidence))) < 1e-12)
    }

    @Test func theCodableRoundTripContinuesIdentically() throws {
        var rng = Xoshiro256(seed: 3)
        let fresh: [EvidenceTest] = [
            EvidenceTest(threshold: 0.1, direction: .above),
            EvidenceTest(threshold: 0.05, direction: .below, confidence: 0.95),
            EvidenceTest(baseline: Counts(events: 13, trials: 900), factor: 2, direction: .above),
            EvidenceTest(baseline: Counts(events: 130, trials: 900), factor: 0.5, direction: .below),
        ]
        for start in fresh {
            var t = start
            for tick in 0...40 {
                // Round-trips before the first observation too.
                let data = try JSONEncoder().encode(t)
                var back = try JSONDecoder().decode(EvidenceTest.self, from: data)
                #expect(back == t)
                let n = rng.poisson(20)
                let c = Counts(events: rng.binomial(n, 0.15), trials: n)
                t.observe(c, elapsedMs: Int64(tick + 1) * 5000)
                back.observe(c, elapsedMs: Int64(tick + 1) * 5000)
                #expect(back == t)
                #expect(back.logEvidence == t.logEvidence && back.reached == t.reached)
            }
            let json = String(decoding: try JSONEncoder().encode(t), as: UTF8.self)
            #expect(json.utf8.count < 1200, "\(json)")
        }
    }

    @Test func aCorruptStateIsRefused() throws {
        let track = #"{"logSum":-1.5,"recent":{"events":1,"trials":10},"recentSinceMs":5000}"#
        func state(tracks: Int) -> Data {
            let list = Array(repeating: track, count: tracks).joined(separator: ",")
            return Data(
                (#"{"direction":"above","threshold":0.1,"confidence":0.99,"total":{"events":1,"trials":10},"#
                    + #""creditedSlots":1,"tracks":[\#(list)]}"#).utf8)
        }
        let whole = try JSONDecoder().decode(EvidenceTest.self, from: state(tracks: EvidenceTest.logOddsSteps.count))
        #expect(whole.total == Counts(events: 1, trials: 10) && whole.recent == Counts(events: 1, trials: 10))
        // One track for six alternatives: not this test's state.
        #expect(throws: DecodingError.self) { _ = try JSONDecoder().decode(EvidenceTest.self, from: state(tracks: 1)) }
    }

    @Test func recentCountsStartAtTheChange() {
        // 3 % for an hour at 100 requests per 5 s, then 60 %: the message should count from the change.
        var rng = Xoshiro256(seed: 4)
        var t = EvidenceTest(threshold: 0.1, direction: .above)
        var tick: Int64 = 0
        while tick < 720 {
            tick += 1
            t.observe(Counts(events: rng.binomial(100, 0.03), trials: 100), elapsedMs: tick * 5000)
        }
        #expect(!t.reached)
        var bad = Counts.zero
        while !t.reached {
            tick += 1
            let c = Counts(events: rng.binomial(100, 0.6), trials: 100)
            bad += c
            t.observe(c, elapsedMs: tick * 5000)
        }
        #expect(t.total.trials == tick * 100)
        // From the slot start nearest the change: within one tick of it.
        #expect(abs(t.recent.trials - bad.trials) <= 100, "\(t.recent) vs \(bad)")
        #expect(t.recentSinceMs >= 720 * 5000 - EvidenceTest.restartSlotMs)
        // For a release bad from the start, recent is everything.
        var fromStart = EvidenceTest(threshold: 0.1, direction: .above)
        for k in 1...3 { fromStart.observe(Counts(events: 1, trials: 2), elapsedMs: Int64(k) * 5000) }
        #expect(fromStart.recent == fromStart.total)
    }

    @Test func baselineBoundsAreChernoffBounds() {
        let alpha = 0.01
        // No errors in 100: KL(0 ‖ p) = −log(1 − p), so the bound is 1 − exp(−log(2/α)/100).
        let upper = EvidenceTest(baseline: Counts(events: 0, trials: 100), factor: 1, direction: .above)
        let expected = 1 - Double.exp(-Double.log(2 / alpha) / 100)
        #expect(abs(upper.baselineBound! - expected) < 1e-12)
        // The bound at which n·KL(p̂ ‖ bound) equals log(2/α), on the right side of p̂, tightening with n.
        var previousWidth = 1.0
        for n: Int64 in [100, 1000, 100_000] {
            let c = Counts(events: n / 20, trials: n)
            let hi = BernoulliMath.chernoffBound(c, upper: true, delta: alpha / 2)
            let lo = BernoulliMath.chernoffBound(c, upper: false, delta: alpha / 2)
            #expect(lo < 0.05 && 0.05 < hi)
            #expect(abs(Double(n) * BernoulliMath.kl(0.05, hi) - Double.log(2 / alpha)) < 1e-6)
            #expect(abs(Double(n) * BernoulliMath.kl(0.05, lo) - Double.log(2 / alpha)) < 1e-6)
            #expect(hi - lo < previousWidth)
            previousWidth = hi - lo
        }
        // No baseline: trivial bounds; "2 × an unknown rate" cannot be exceeded.
        #expect(BernoulliMath.chernoffBound(.zero, upper: true, delta: 0.005) == 1)
        #expect(BernoulliMath.chernoffBound(.zero, upper: false, delta: 0.005) == 0)
        var none = EvidenceTest(baseline: .zero, factor: 2, direction: .above)
        none.observe(Counts(events: 1000, trials: 1000), elapsedMs: 5000)
        #expect(!none.reached)
        // The threshold is factor × bound, and the sequential part runs at α/2.
        let rel = EvidenceTest(baseline: Counts(events: 50, trials: 1000), factor: 2, direction: .above)
        #expect(abs(rel.threshold - 2 * rel.baselineBound!) < 1e-15)
        let below = EvidenceTest(baseline: Counts(events: 50, trials: 1000), factor: 0.5, direction: .below)
        #expect(below.baselineBound! < 0.05 && abs(below.threshold - 0.5 * below.baselineBound!) < 1e-15)
    }

    @Test func evidenceGrowsWithBadTrafficAndShrinksWithGood() {
        var t = EvidenceTest(threshold: 0.1, direction: .above)
        t.observe(Counts(events: 5, trials: 20), elapsedMs: 5000)
        let afterBad = t.logEvidence
        // 25 % of 20 favours most alternatives: M above the first start's weight 1/2.
        #expect(afterBad > Double.log(0.5))
        t.observe(Counts(events: 0, trials: 20), elapsedMs: 6000)
        #expect(t.logEvidence < afterBad)
    }
}

/// The sizes of a decision, for the table in docs/decisions.md: the fewest events in one tick of `n` trials that
/// reach 99 % on a fresh test (`above`), and the clean trials that prove `below`.
@Suite @MainActor struct EvidenceDecisionSizeTests {
    static func fewestEventsThatFire(p0: Double, trials n: Int64) -> Int64? {
        for k in 0...n {
            var t = EvidenceTest(threshold: p0, direction: .above)
            t.observe(Counts(events: k, trials: n), elapsedMs: 5000)
            if t.reached { return k }
        }
        return nil
    }

    static func cleanTrialsThatProveBelow(p0: Double) -> Int64 {
        var n: Int64 = 1
        while true {
            var t = EvidenceTest(threshold: p0, direction: .below)
            t.observe(Counts(events: 0, trials: n), elapsedMs: 5000)
            if t.reached { return n }
            n += 1
        }
    }

    static func errorsInARowThatFire(p0: Double) -> Int64 {
        var n: Int64 = 1
        while fewestEventsThatFire(p0: p0, trials: n) != n { n += 1 }
        return n
    }

    @Test func theRequestsADecisionNeeds() {
        var lines: [String] = []
        for p0 in [0.01, 0.05, 0.1, 0.3] {
            let row = [5, 10, 20, 100, 1000].map { n in
                Self.fewestEventsThatFire(p0: p0, trials: Int64(n)).map { "\($0)/\(n)" } ?? "-/\(n)"
            }
            lines.append(
                "p0=\(p0): \(Self.errorsInARowThatFire(p0: p0)) errors in a row; fires at "
                    + "\(row.joined(separator: " ")); below proven by \(Self.cleanTrialsThatProveBelow(p0: p0)) clean")
        }
        print("evidence-sizes\n" + lines.joined(separator: "\n"))
        // The figures quoted in the docs (p0 = 10 %, a fresh test, one tick).
        #expect(Self.errorsInARowThatFire(p0: 0.1) == 3)
        #expect(Self.fewestEventsThatFire(p0: 0.1, trials: 8) == 6)
        #expect(Self.fewestEventsThatFire(p0: 0.1, trials: 100) == 24)
        #expect(Self.fewestEventsThatFire(p0: 0.1, trials: 1000) == 139)
        #expect(Self.cleanTrialsThatProveBelow(p0: 0.1) == 59)
    }
}
