import RealModule
@testable import RollbackCore

/// Deterministic randomness for the evidence Monte Carlo: xoshiro256** seeded through SplitMix64, and exact
/// Poisson and binomial draws by inversion (so a run is the same on every machine and in every build mode).
struct Xoshiro256: RandomNumberGenerator {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    mutating func next() -> UInt64 {
        let result = rotl(s.1 &* 5, 7) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = rotl(s.3, 45)
        return result
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Poisson(λ), by inversion: from 0 for small λ, outward from the mode otherwise.
    mutating func poisson(_ lambda: Double) -> Int64 {
        guard lambda > 0 else { return 0 }
        if lambda < 12 {
            var u = uniform()
            var k: Int64 = 0
            var pk = Double.exp(-lambda)
            while u > pk && k < 1000 {
                u -= pk
                k += 1
                pk *= lambda / Double(k)
            }
            return k
        }
        let m = Int64(lambda)
        let logPm = Double(m) * Double.log(lambda) - lambda - Double.logGamma(Double(m) + 1)
        return outwardFromMode(mode: m, pMode: Double.exp(logPm), upper: Int64.max) { k, up in
            up ? lambda / Double(k + 1) : Double(k) / lambda
        }
    }

    /// Binomial(n, p), by inversion: from 0 when n·p is small, outward from the mode otherwise.
    mutating func binomial(_ n: Int64, _ p: Double) -> Int64 {
        guard n > 0, p > 0 else { return 0 }
        guard p < 1 else { return n }
        let odds = p / (1 - p)
        if Double(n) * p < 12 {
            var u = uniform()
            var k: Int64 = 0
            var pk = Double.exp(Double(n) * Double.log(onePlus: -p))
            while u > pk && k < n {
                u -= pk
                pk *= Double(n - k) / Double(k + 1) * odds
                k += 1
            }
            return k
        }
        let m = min(n, Int64(Double(n + 1) * p))
        let logPm =
            Double.logGamma(Double(n) + 1) - Double.logGamma(Double(m) + 1) - Double.logGamma(Double(n - m) + 1)
            + Double(m) * Double.log(p) + Double(n - m) * Double.log(onePlus: -p)
        return outwardFromMode(mode: m, pMode: Double.exp(logPm), upper: n) { k, up in
            up ? Double(n - k) / Double(k + 1) * odds : Double(k) / Double(n - k + 1) / odds
        }
    }

    /// Inversion that visits the support alternately above and below the mode (any fixed visiting order is an
    /// exact inversion), so the expected work is about one standard deviation. `ratio(k, true)` is
    /// pmf(k+1)/pmf(k); `ratio(k, false)` is pmf(k−1)/pmf(k).
    private mutating func outwardFromMode(
        mode: Int64, pMode: Double, upper: Int64, ratio: (Int64, Bool) -> Double
    ) -> Int64 {
        var u = uniform() - pMode
        if u < 0 { return mode }
        var lo = mode, hi = mode
        var pLo = pMode, pHi = pMode
        while lo > 0 || hi < upper {
            if hi < upper {
                pHi *= ratio(hi, true)
                hi += 1
                u -= pHi
                if u < 0 { return hi }
            }
            if lo > 0 {
                pLo *= ratio(lo, false)
                lo -= 1
                u -= pLo
                if u < 0 { return lo }
            }
            if pLo < 1e-300 && pHi < 1e-300 { break }
        }
        return mode
    }
}

/// Requests per tick: Poisson with the given mean, or exactly `mean` requests when `fixed`.
struct Traffic: CustomStringConvertible, Sendable {
    var perTick: Double
    var fixed: Bool = false

    func trials(_ rng: inout Xoshiro256) -> Int64 {
        fixed ? Int64(perTick) : rng.poisson(perTick)
    }

    var description: String { fixed ? "\(Int64(perTick))/tick" : "Poisson(\(perTick))/tick" }
}

/// The outcome of one simulated deploy window.
struct Run {
    /// The tick (1-based) at which the test was first reached, or nil.
    var firedAtTick: Int?
    /// Trials observed up to and including that tick (or the whole window).
    var trials: Int64
    /// Trials observed from `countFromTick` to the firing tick.
    var trialsSinceChange: Int64
}

/// Feeds `ticks` ticks of `traffic` at the true rate `rate(tick)` into `test`, looking after every tick, and stops
/// at the first tick the test is reached.
func simulate(
    _ start: EvidenceTest, ticks: Int, intervalMs: Int64, traffic: Traffic, rng: inout Xoshiro256,
    countFromTick: Int = 1, rate: (Int) -> Double
) -> Run {
    var test = start
    var sinceChange: Int64 = 0
    for tick in 1...ticks {
        let n = traffic.trials(&rng)
        let x = rng.binomial(n, rate(tick))
        // The tick's counts arrive at its end: elapsed = tick × interval.
        test.observe(Counts(events: x, trials: n), elapsedMs: Int64(tick) * intervalMs)
        if tick >= countFromTick { sinceChange += n }
        if test.reached {
            return Run(firedAtTick: tick, trials: test.total.trials, trialsSinceChange: sinceChange)
        }
    }
    return Run(firedAtTick: nil, trials: test.total.trials, trialsSinceChange: sinceChange)
}

/// The empirical `q`-quantile (nearest rank) of `values`; nil counts as +∞ and sorts last.
func quantile(_ values: [Int?], _ q: Double) -> Int? {
    let sorted = values.sorted { ($0 ?? .max) < ($1 ?? .max) }
    let rank = max(0, min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - 1))
    return sorted[rank]
}

/// The largest fire fraction that is still consistent with a true probability of `alpha` over `n` runs: three
/// binomial standard deviations above it.
func fireFractionTolerance(_ alpha: Double, runs n: Int) -> Double {
    alpha + 3 * (alpha * (1 - alpha) / Double(n)).squareRoot()
}
