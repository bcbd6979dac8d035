import RealModule
import Testing
@testable import RollbackCore

/// How fast ``EvidenceTest`` catches bad releases, measured in simulated deploy windows, against bounds derived
/// from the per-request drift. Each case prints an `evidence-mc` line with its seed (quoted in docs/decisions.md).
///
/// The derivation: the mixture is at least one of its terms, `M ≥ v · w · Π LR` (equal weights `v = 1/6` over
/// the alternatives, `w` the weight of the start), so the test has fired by the time the log likelihood ratio of
/// the best single alternative since that start reaches `B = log(1/α) + log 6 + log(1/w)`. That log ratio is a
/// sum of i.i.d. per-request terms with mean `D` and standard deviation `σ`; by the normal approximation it is
/// above `B` after `n` requests with probability `q` once `n·D − z_q·σ·√n ≥ B`. The test can only be faster
/// (the other starts and alternatives add to `M`), so `n(q)` bounds the `q`-quantile of the detection delay,
/// up to the requests of the tick that crosses it.
@Suite @MainActor struct EvidenceDelayTests {
    nonisolated static let intervalMs: Int64 = 5000
    nonisolated static let grid = Double(EvidenceTest.logOddsSteps.count)

    /// The requests after which the best single alternative's log likelihood ratio is above `barrier` with
    /// probability `q` (normal approximation), at true rate `p` against `p0`.
    static func requestsNeeded(p: Double, p0: Double, direction: EvidenceTest.Direction, barrier: Double, z: Double)
        -> Double
    {
        var best = Double.infinity
        for alt in EvidenceTest.alternatives(p0: p0, direction: direction) {
            let a = alt.logRatioEvent, b = alt.logRatioNonEvent
            let drift = p * a + (1 - p) * b
            guard drift > 0 else { continue }
            let sigma = (p * (1 - p)).squareRoot() * abs(a - b)
            let root = (z * sigma + (z * z * sigma * sigma + 4 * drift * barrier).squareRoot()) / (2 * drift)
            best = min(best, root * root)
        }
        return best
    }

    /// The barrier of a release bad from the first tick: `log(1/α) + log 6 + log 2` (the first tick's start has
    /// weight 1/2).
    static func startBarrier(alpha: Double) -> Double {
        Double.log(1 / alpha) + Double.log(grid) + Double.log(2)
    }

    struct Delays {
        var ticks: [Int?] = []
        var requests: [Int?] = []

        mutating func add(_ run: Run, fromTick: Int = 1) {
            ticks.append(run.firedAtTick.map { $0 - fromTick + 1 })
            requests.append(run.firedAtTick == nil ? nil : Int(run.trialsSinceChange))
        }

        func fraction(withinTicks k: Int) -> Double {
            Double(ticks.filter { $0 != nil && $0! <= k }.count) / Double(ticks.count)
        }

        var summary: String {
            let show = { (v: Int?) in v.map(String.init) ?? "never" }
            return "ticks median \(show(quantile(ticks, 0.5))) p90 \(show(quantile(ticks, 0.9))), "
                + "requests median \(show(quantile(requests, 0.5))) p90 \(show(quantile(requests, 0.9))) "
                + "(\(ticks.count) runs)"
        }
    }

    static func delays(
        p0: Double, rate: Double, traffic: Traffic, runs: Int, seed: UInt64, intervalMs: Int64 = intervalMs,
        maxTicks: Int = 2000
    ) -> Delays {
        var rng = Xoshiro256(seed: seed)
        var d = Delays()
        for _ in 0..<runs {
            d.add(
                simulate(
                    EvidenceTest(threshold: p0, direction: .above), ticks: maxTicks, intervalMs: intervalMs,
                    traffic: traffic, rng: &rng
                ) { _ in rate })
        }
        return d
    }

    /// 60 % errors against a 10 % threshold at 100 requests per tick: one tick holds ~75 nats of evidence for a
    /// barrier of ~7.1, so every run fires at the first tick.
    @Test func sixTimesTheThresholdAtHighTrafficFiresAtTheFirstTick() {
        let d = Self.delays(p0: 0.1, rate: 0.6, traffic: Traffic(perTick: 100, fixed: true), runs: 200, seed: 201)
        print("evidence-mc delay 6x p0=0.1 100/tick seed=201: \(d.summary)")
        #expect(d.fraction(withinTicks: 1) == 1)
    }

    /// 60 % errors against 10 % at 0.3 requests/s (Poisson 1.5 per 5-second tick). Mostly the traffic binds:
    /// the test needs 9 requests at the median and 17 at the 90th percentile, and a minute holds 18 on average
    /// (fewer than 12 in about 5 % of minutes), so about 92 % of runs fire within 60 s and 95 % within 75 s.
    @Test func sixTimesTheThresholdAtLowTrafficFiresWithinAMinuteOrSo() {
        let d = Self.delays(p0: 0.1, rate: 0.6, traffic: Traffic(perTick: 1.5), runs: 1000, seed: 202)
        let within60s = d.fraction(withinTicks: 12)
        let within75s = d.fraction(withinTicks: 15)
        print(
            "evidence-mc delay 6x p0=0.1 Poisson(1.5)/tick seed=202: \(d.summary); p95 ticks "
                + "\(quantile(d.ticks, 0.95) ?? -1); within 60 s: \(within60s), within 75 s: \(within75s)")
        #expect(within60s >= 0.9)
        #expect(within75s >= 0.95)
        // The derived bound in requests, plus the crossing tick's requests.
        let b = Self.startBarrier(alpha: 0.01)
        let n90 = Self.requestsNeeded(p: 0.6, p0: 0.1, direction: .above, barrier: b, z: 1.2816)
        #expect(Double(quantile(d.requests, 0.9) ?? .max) <= n90 + 4, "p90 requests vs derived \(n90)")
    }

    /// Twice the threshold (20 % against 10 %) at several traffic levels: the harder case, ~170 requests.
    @Test(arguments: [(1.5, 203 as UInt64), (10, 204), (100, 205)])
    func twiceTheThreshold(perTick: Double, seed: UInt64) {
        let traffic = Traffic(perTick: perTick, fixed: perTick >= 100)
        let d = Self.delays(p0: 0.1, rate: 0.2, traffic: traffic, runs: 300, seed: seed)
        let b = Self.startBarrier(alpha: 0.01)
        let n50 = Self.requestsNeeded(p: 0.2, p0: 0.1, direction: .above, barrier: b, z: 0)
        let n90 = Self.requestsNeeded(p: 0.2, p0: 0.1, direction: .above, barrier: b, z: 1.2816)
        print(
            "evidence-mc delay 2x p0=0.1 \(traffic) seed=\(seed): \(d.summary); "
                + "derived requests median ≤ \(Int(n50.rounded(.up))) p90 ≤ \(Int(n90.rounded(.up)))")
        let slack = 3 * perTick // the crossing tick's requests
        #expect(Double(quantile(d.requests, 0.5) ?? .max) <= n50 + slack)
        #expect(Double(quantile(d.requests, 0.9) ?? .max) <= n90 + slack)
    }

    /// Six (three for health) times the threshold for the three trigger kinds at 10 requests (or probes) per tick: error ratio
    /// (10 %, now 60 %), P95 latency (5 % slower than the bound, now 30 %), unhealthy instances (30 %, now 90 %).
    @Test func sixOrThreeTimesTheThresholdForEachTriggerKind() {
        for (p0, rate, seed) in [(0.1, 0.6, 213 as UInt64), (0.05, 0.3, 206), (0.3, 0.9, 207)] {
            let d = Self.delays(p0: p0, rate: rate, traffic: Traffic(perTick: 10), runs: 300, seed: seed)
            let b = Self.startBarrier(alpha: 0.01)
            let n90 = Self.requestsNeeded(p: rate, p0: p0, direction: .above, barrier: b, z: 1.2816)
            print(
                "evidence-mc delay p0=\(p0) true=\(rate) Poisson(10.0)/tick seed=\(seed): \(d.summary); "
                    + "derived requests p90 ≤ \(Int(n90.rounded(.up)))")
            #expect(Double(quantile(d.requests, 0.9) ?? .max) <= n90 + 30)
        }
    }

    /// A release good for an hour (3 % against 10 %), then bad (60 %) from tick 721. The good hour must not blind
    /// the test: the restart at the next 10-second slot (k = 362, weight 1/(362·363), 11.8 nats) carries the
    /// evidence, so the barrier is `log(1/α) + log 6 + log(k(k+1))` ≈ 18.2 nats from that slot on.
    @Test(arguments: [(1.5, 208 as UInt64), (100, 209)])
    func aReleaseThatTurnsBadAfterAnHourIsCaught(perTick: Double, seed: UInt64) {
        let traffic = Traffic(perTick: perTick, fixed: perTick >= 100)
        var rng = Xoshiro256(seed: seed)
        let change = 721
        var d = Delays()
        var firedEarly = 0
        for _ in 0..<200 {
            let run = simulate(
                EvidenceTest(threshold: 0.1, direction: .above), ticks: change + 400, intervalMs: Self.intervalMs,
                traffic: traffic, rng: &rng, countFromTick: change
            ) { tick in tick < change ? 0.03 : 0.6 }
            if let t = run.firedAtTick, t < change { firedEarly += 1 }
            d.add(run, fromTick: change)
        }
        // Tick 721 ends at 3605 s, in slot 361, whose start (tick 720) was still good; slot 362 starts at tick 722.
        let k = 362.0
        let barrier = Double.log(100) + Double.log(Self.grid) + Double.log(k * (k + 1))
        let n90 = Self.requestsNeeded(p: 0.6, p0: 0.1, direction: .above, barrier: barrier, z: 1.2816)
        print(
            "evidence-mc delay good 3% 1h then 60% p0=0.1 \(traffic) seed=\(seed): after the change \(d.summary); "
                + "fired during the good hour: \(firedEarly); derived: ≤ 1 tick to the restart + p90 ≤ "
                + "\(Int(n90.rounded(.up))) requests")
        #expect(firedEarly <= 2)
        // Requests and ticks count from the change; the restart may come one tick later.
        #expect(Double(quantile(d.requests, 0.9) ?? .max) <= n90 + 4 * perTick)
        if perTick >= 100 { #expect(d.fraction(withinTicks: 2) == 1) }
    }

    /// The restart slots are in time, not in ticks: at the same 2 requests/s and 2× the threshold, a 250 ms
    /// interval (40 ticks per slot) and a 5 s interval detect after about the same time.
    @Test func theIntervalDoesNotChangeTheDelay() {
        let slow = Self.delays(p0: 0.1, rate: 0.2, traffic: Traffic(perTick: 10), runs: 200, seed: 210)
        let fast = Self.delays(
            p0: 0.1, rate: 0.2, traffic: Traffic(perTick: 0.5), runs: 200, seed: 211, intervalMs: 250, maxTicks: 8000)
        let slowSeconds = Double(quantile(slow.ticks, 0.5) ?? .max) * 5
        let fastSeconds = Double(quantile(fast.ticks, 0.5) ?? .max) * 0.25
        print(
            "evidence-mc delay 2x p0=0.1 2 req/s: 5 s ticks (seed 210) median \(slowSeconds) s, \(slow.summary); "
                + "250 ms ticks (seed 211) median \(fastSeconds) s, \(fast.summary)")
        #expect(abs(slowSeconds - fastSeconds) <= 0.25 * slowSeconds)
    }

    /// Proving a recovery after a rollback (`below` 10 %): clean requests needed. A fixed-sample one-sided test
    /// needs log(1/α)/log(1/(1−p0)) ≈ 43.7; this test pays log 6 for the grid and log 2 for the first start, and the
    /// best alternative's log ratio per clean request is slightly below log(1/(1−p0)); one clean request per 5-second
    /// tick gets there sooner than one batch, because the restarts of later slots add their weight.
    @Test func provingRecoveryNeedsAboutSixtyCleanRequests() {
        let lowerBound = Double.log(100) / -Double.log(onePlus: -0.1)
        var oneAtATime = EvidenceTest(threshold: 0.1, direction: .below)
        var perTick = 0
        while !oneAtATime.reached && perTick < 1000 {
            perTick += 1
            oneAtATime.observe(Counts(events: 0, trials: 1), elapsedMs: Int64(perTick) * Self.intervalMs)
        }
        var batch = 0
        for n in 1...1000 {
            var t = EvidenceTest(threshold: 0.1, direction: .below)
            t.observe(Counts(events: 0, trials: Int64(n)), elapsedMs: 5000)
            if t.reached { batch = n; break }
        }
        // The same at a true 1 %, Poisson 1.5 requests per 5-second tick.
        var rng = Xoshiro256(seed: 212)
        var d = Delays()
        for _ in 0..<300 {
            d.add(
                simulate(
                    EvidenceTest(threshold: 0.1, direction: .below), ticks: 2000, intervalMs: Self.intervalMs,
                    traffic: Traffic(perTick: 1.5), rng: &rng
                ) { _ in 0.01 })
        }
        let b = Self.startBarrier(alpha: 0.01)
        let derived = Self.requestsNeeded(p: 0, p0: 0.1, direction: .below, barrier: b, z: 0)
        print(
            "evidence-mc recovery below p0=0.1: clean requests needed one per tick \(perTick), in one tick \(batch) "
                + "(derived \(derived), fixed-sample minimum \(lowerBound)); true 1% Poisson(1.5)/tick seed=212: "
                + d.summary)
        // All six alternatives gain on clean requests, so the mixture beats its best single term.
        #expect(Double(batch) <= derived.rounded(.up))
        #expect(Double(perTick) >= lowerBound && perTick <= batch)
        #expect(Double(quantile(d.requests, 0.5) ?? .max) <= 1.5 * derived)
    }
}
