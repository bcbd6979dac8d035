import FoundationEssentials
import RealModule
import Testing
@testable import RollbackCore

/// Simulated deploy windows for ``EvidenceTest``: how often a release exactly at the threshold ever fires (the
/// guarantee: at most α, looked at every tick), and how fast bad releases are caught. Every case prints one
/// `evidence-mc` line with its seed; docs/decisions.md ("Evidence: the sequential test") quotes them.
///
/// One run's evidence trajectory answers every α at once: a test fires at α exactly when the supremum of its log
/// evidence over the window reaches log(1/α). So the null cases record that supremum and count α = 0.01, 0.05 and
/// 0.1 from the same runs (the tighter check on the bound comes from α = 0.1, where a few hundred runs suffice).
///
/// `EVIDENCE_MC_SCALE=25 swift test --filter EvidenceMonteCarloTests` multiplies the runs of the null cases (same
/// seeds) for the larger table in the docs; the default keeps the file at a few seconds in a debug build.
@Suite @MainActor struct EvidenceMonteCarloTests {
    nonisolated static let traffics: [Traffic] = [
        Traffic(perTick: 0.1), Traffic(perTick: 1), Traffic(perTick: 10),
        Traffic(perTick: 100, fixed: true), Traffic(perTick: 1000, fixed: true),
    ]
    nonisolated static let alphas: [Double] = [0.01, 0.05, 0.1]
    /// One hour of 5-second ticks.
    nonisolated static let hourTicks = 720
    nonisolated static let intervalMs: Int64 = 5000
    nonisolated static let scale = max(1, Int(ProcessInfo.processInfo.environment["EVIDENCE_MC_SCALE"] ?? "") ?? 1)
    nonisolated static let nullRuns = 200 * scale

    /// The supremum over every tick of a window of the log evidence at the constant true rate `rate`.
    static func supLogEvidence(
        _ start: EvidenceTest, ticks: Int, intervalMs: Int64, traffic: Traffic, rate: Double,
        rng: inout Xoshiro256
    ) -> Double {
        var test = start
        var sup = -Double.infinity
        // `reached` at the loosest barrier (α = 0.1) is cheap; the exact log-sum-exp is needed only beyond it.
        for tick in 1...ticks {
            let n = traffic.trials(&rng)
            test.observe(Counts(events: rng.binomial(n, rate), trials: n), elapsedMs: Int64(tick) * intervalMs)
            if test.reached { sup = max(sup, test.logEvidence) }
        }
        return sup
    }

    struct NullOutcome {
        var fired: [Double: Int] = [:]
        var runs = 0

        mutating func add(_ sup: Double) {
            runs += 1
            for a in EvidenceMonteCarloTests.alphas where sup >= Double.log(1 / a) { fired[a, default: 0] += 1 }
        }

        mutating func merge(_ o: NullOutcome) {
            runs += o.runs
            for (a, n) in o.fired { fired[a, default: 0] += n }
        }

        func fraction(_ a: Double) -> Double { Double(fired[a] ?? 0) / Double(runs) }

        var summary: String {
            EvidenceMonteCarloTests.alphas.map { a in
                "α=\(a): \(fired[a] ?? 0)/\(runs) = \(fraction(a))"
            }.joined(separator: ", ")
        }

        /// Each α's fraction within three binomial standard deviations of α.
        func expectWithinBound(_ label: String, sourceLocation: SourceLocation = #_sourceLocation) {
            for a in EvidenceMonteCarloTests.alphas {
                let limit = fireFractionTolerance(a, runs: runs)
                #expect(
                    fraction(a) <= limit, "\(label) α=\(a): \(fraction(a)) > \(limit)", sourceLocation: sourceLocation)
            }
        }
    }

    /// The threshold tests of the three trigger kinds: error ratio 10 %, P95 latency (5 % slower than the bound),
    /// unhealthy instances 30 %. A release exactly at the threshold, for an hour of 5-second ticks.
    @Test(arguments: [(0.10, 101 as UInt64), (0.05, 102), (0.30, 103)])
    func atTheThresholdFiresAtMostAlpha(p0: Double, seed: UInt64) {
        var rng = Xoshiro256(seed: seed)
        var pooled = NullOutcome()
        for traffic in Self.traffics {
            var outcome = NullOutcome()
            for _ in 0..<Self.nullRuns {
                outcome.add(
                    Self.supLogEvidence(
                        EvidenceTest(threshold: p0, direction: .above, confidence: 0.9), ticks: Self.hourTicks,
                        intervalMs: Self.intervalMs, traffic: traffic, rate: p0, rng: &rng))
            }
            print("evidence-mc null above p0=\(p0) seed=\(seed) \(traffic) 720 ticks: \(outcome.summary)")
            outcome.expectWithinBound("p0=\(p0) \(traffic)")
            pooled.merge(outcome)
        }
        print("evidence-mc null above p0=\(p0) seed=\(seed) pooled: \(pooled.summary)")
        pooled.expectWithinBound("p0=\(p0) pooled")
    }

    /// Proving a recovery: a release exactly at the threshold (10 %) must rarely "prove" it is below.
    @Test func atTheThresholdRarelyProvesRecovery() {
        let seed: UInt64 = 104
        var rng = Xoshiro256(seed: seed)
        var pooled = NullOutcome()
        for traffic in Self.traffics {
            var outcome = NullOutcome()
            for _ in 0..<Self.nullRuns {
                outcome.add(
                    Self.supLogEvidence(
                        EvidenceTest(threshold: 0.1, direction: .below, confidence: 0.9), ticks: Self.hourTicks,
                        intervalMs: Self.intervalMs, traffic: traffic, rate: 0.1, rng: &rng))
            }
            print("evidence-mc null below p0=0.1 seed=\(seed) \(traffic) 720 ticks: \(outcome.summary)")
            outcome.expectWithinBound("below \(traffic)")
            pooled.merge(outcome)
        }
        print("evidence-mc null below p0=0.1 seed=\(seed) pooled: \(pooled.summary)")
        pooled.expectWithinBound("below pooled")
    }

    /// "More than 2 × the previous release's error rate": the previous release had 5 % over its last hour at the
    /// same traffic, the new one has exactly 10 %. The baseline's counts are drawn too, so the bound's own error
    /// (α/2) is part of what is measured. The baseline test's threshold depends on α, so each α runs separately.
    @Test(arguments: [(0.01, 105 as UInt64), (0.1, 106)])
    func baselineRelativeAtTheBoundaryFiresAtMostAlpha(alpha: Double, seed: UInt64) {
        let pBase = 0.05
        let factor = 2.0
        Self.baselineNullCase("aboveBaseline f=2 base=0.05", alpha: alpha, seed: seed) { traffic, rng in
            let nBase = Self.hourOfTrials(traffic, &rng)
            let baseline = Counts(events: rng.binomial(nBase, pBase), trials: nBase)
            let test = EvidenceTest(baseline: baseline, factor: factor, direction: .above, confidence: 1 - alpha)
            return (test, factor * pBase)
        }
    }

    /// The requests of an hour of `traffic` (the previous release's baseline window).
    static func hourOfTrials(_ traffic: Traffic, _ rng: inout Xoshiro256) -> Int64 {
        traffic.fixed
            ? Int64(traffic.perTick) * Int64(hourTicks) : rng.poisson(traffic.perTick * Double(hourTicks))
    }

    /// A baseline-relative null case: `draw` makes one window's test (the baseline drawn inside it) and the live
    /// rate at the boundary; every traffic runs `nullRuns` windows of an hour, and each traffic's fire fraction
    /// and the pooled one must stay within α's binomial tolerance.
    static func baselineNullCase(
        _ label: String, alpha: Double, seed: UInt64,
        draw: (Traffic, inout Xoshiro256) -> (test: EvidenceTest, rate: Double)
    ) {
        var rng = Xoshiro256(seed: seed)
        var pooledFired = 0
        var pooledRuns = 0
        for traffic in traffics {
            var fired = 0
            for _ in 0..<nullRuns {
                let (test, rate) = draw(traffic, &rng)
                let run = simulate(test, ticks: hourTicks, intervalMs: intervalMs, traffic: traffic, rng: &rng) { _ in
                    rate
                }
                if run.firedAtTick != nil { fired += 1 }
            }
            let fraction = Double(fired) / Double(nullRuns)
            print("evidence-mc null \(label) α=\(alpha) seed=\(seed) \(traffic): \(fired)/\(nullRuns) = \(fraction)")
            #expect(fraction <= fireFractionTolerance(alpha, runs: nullRuns), "\(label) \(traffic)")
            pooledFired += fired
            pooledRuns += nullRuns
        }
        let pooled = Double(pooledFired) / Double(pooledRuns)
        print("evidence-mc null \(label) α=\(alpha) seed=\(seed) pooled: \(pooledFired)/\(pooledRuns) = \(pooled)")
        #expect(pooled <= fireFractionTolerance(alpha, runs: pooledRuns), "\(label) pooled")
    }

    /// "P95 above 2 × the previous release's P95", on bucket counts: the previous release's latencies are
    /// exponential with mean 50 ms (P95 150 ms), the new release's exactly twice as slow, so exactly 5 % of its
    /// requests are slower than twice the previous P95. Buckets every 10 ms up to 1 s, then `+Inf`. The baseline
    /// histogram (an hour at the same traffic) is drawn too, so the quantile bound's own error (α/2) is measured;
    /// each tick's live requests slower than the first boundary at or above 2 × that bound are the counts.
    @Test(arguments: [(0.01, 109 as UInt64), (0.1, 110)])
    func latencyRelativeToTheBaselineAtTheBoundaryFiresAtMostAlpha(alpha: Double, seed: UInt64) {
        let mean = 0.05
        let factor = 2.0
        let bounds = (1...100).map { Double($0) / 100 } + [.infinity]
        // P(X ≤ b) for the baseline's exponential latencies.
        func cdf(_ b: Double) -> Double { b == .infinity ? 1 : 1 - Double.exp(-b / mean) }
        Self.baselineNullCase("latency aboveBaseline f=2 P95", alpha: alpha, seed: seed) { traffic, rng in
            let nBase = Self.hourOfTrials(traffic, &rng)
            // The baseline's histogram, bucket by bucket (a multinomial as successive binomials).
            var left = nBase
            var massLeft = 1.0
            var cumulative: Int64 = 0
            var buckets: [HistogramBucket] = []
            var lower = 0.0
            for b in bounds {
                let p = cdf(b) - cdf(lower)
                let k = left > 0 && massLeft > 0 ? rng.binomial(left, min(1, p / massLeft)) : 0
                cumulative += k
                left -= k
                massLeft -= p
                lower = b
                buckets.append(HistogramBucket(upperBound: b, count: Double(cumulative)))
            }
            buckets[buckets.count - 1].count = Double(nBase)
            let delta = EvidenceTest.baselineShare(confidence: 1 - alpha)
            let u = BernoulliMath.quantileBound(buckets, quantile: 0.95, upper: true, delta: delta) ?? .infinity
            // The live bound rounds up to a boundary; the live release is `factor` times as slow.
            let liveBoundary = bounds.first { $0 >= factor * u } ?? .infinity
            let slowRate = liveBoundary == .infinity ? 0 : Double.exp(-liveBoundary / (factor * mean))
            return (EvidenceTest(threshold: 0.05, direction: .above, confidence: 1 - alpha, baselineBound: u), slowRate)
        }
    }

    /// The same guarantee at a 250 ms interval: 20 times the looks per second (15 minutes = 3,600 looks), the
    /// same restart slots in time.
    @Test func aQuarterSecondIntervalKeepsTheBound() {
        let seed: UInt64 = 107
        var rng = Xoshiro256(seed: seed)
        var pooled = NullOutcome()
        for traffic in [Traffic(perTick: 0.25), Traffic(perTick: 25)] {
            var outcome = NullOutcome()
            for _ in 0..<(100 * Self.scale) {
                outcome.add(
                    Self.supLogEvidence(
                        EvidenceTest(threshold: 0.1, direction: .above, confidence: 0.9), ticks: 3600,
                        intervalMs: 250, traffic: traffic, rate: 0.1, rng: &rng))
            }
            print("evidence-mc null above p0=0.1 interval=250ms seed=\(seed) \(traffic) 3600 ticks: \(outcome.summary)")
            outcome.expectWithinBound("250 ms \(traffic)")
            pooled.merge(outcome)
        }
        print("evidence-mc null above p0=0.1 interval=250ms seed=\(seed) pooled: \(pooled.summary)")
        pooled.expectWithinBound("250 ms pooled")
    }

    /// The false alarm: 1 error in 8 requests read as 12.5 %. A healthy release at 3 % against a 10 %
    /// threshold at 0.3 requests/s (Poisson 1.5 per 5-second tick) for 10 minutes.
    @Test func aHealthyLowTrafficReleaseDoesNotFire() {
        let seed: UInt64 = 108
        var rng = Xoshiro256(seed: seed)
        let runs = 2000 * Self.scale
        var fired = 0
        for _ in 0..<runs {
            let run = simulate(
                EvidenceTest(threshold: 0.1, direction: .above), ticks: 120, intervalMs: Self.intervalMs,
                traffic: Traffic(perTick: 1.5), rng: &rng
            ) { _ in 0.03 }
            if run.firedAtTick != nil { fired += 1 }
        }
        print("evidence-mc healthy 3% vs 10% 0.3 req/s 10 min seed=\(seed): fired \(fired)/\(runs)")
        #expect(Double(fired) / Double(runs) <= fireFractionTolerance(0.01, runs: runs))
    }
}
