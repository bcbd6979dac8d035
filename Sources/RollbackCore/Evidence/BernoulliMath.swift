import RealModule

/// Log-space arithmetic and Bernoulli facts for ``EvidenceTest``. Every quantity that could overflow (a
/// likelihood ratio over 100,000 requests, a probability within 1e-9 of 0 or 1) is kept as a logarithm.
enum BernoulliMath {
    /// `log(exp(a) + exp(b))` without overflow or underflow.
    static func logAddExp(_ a: Double, _ b: Double) -> Double {
        if a == -.infinity { return b }
        if b == -.infinity { return a }
        let (hi, lo) = a >= b ? (a, b) : (b, a)
        return hi + Double.log(onePlus: Double.exp(lo - hi))
    }

    /// `log(1 + exp(z))`, accurate for large |z| (the softplus).
    static func softplus(_ z: Double) -> Double {
        z > 0 ? z + Double.log(onePlus: Double.exp(-z)) : Double.log(onePlus: Double.exp(z))
    }

    /// `log(p / (1 − p))`.
    static func logit(_ p: Double) -> Double {
        Double.log(p) - Double.log(onePlus: -p)
    }

    /// `log p` and `log(1 − p)` of the probability whose log-odds are `l`, without forming `p` (so a `p` within
    /// 1e-15 of 1 still has an exact `log(1 − p)`).
    static func logProbabilities(logOdds l: Double) -> (logP: Double, logQ: Double) {
        (-softplus(-l), -softplus(l))
    }

    /// Kullback–Leibler divergence of Bernoulli(q) from Bernoulli(p), in nats, with `0 · log 0 = 0`.
    /// Infinite when `p` is 0 or 1 and `q` is not.
    static func kl(_ q: Double, _ p: Double) -> Double {
        var d = 0.0
        if q > 0 { d += q * (Double.log(q) - Double.log(p)) }
        if q < 1 { d += (1 - q) * (Double.log(onePlus: -q) - Double.log(onePlus: -p)) }
        return d
    }

    /// The Chernoff (KL) confidence bound of a Bernoulli rate from `counts`: for `upper`, the largest `p ≥ p̂` with
    /// `n · KL(p̂ ‖ p) ≤ log(1/δ)`; otherwise the smallest `p ≤ p̂` with the same. Since
    /// `P(p̂ ≤ x) ≤ exp(−n · KL(x ‖ p))` for `x < p` (and mirrored), the upper bound is below the true rate with
    /// probability at most δ, and so is the lower bound above it. No trials give the trivial bound (1 or 0).
    /// A distribution-free confidence bound of the `q`-quantile ξ of the observations behind cumulative bucket
    /// counts, rounded outwards to bucket boundaries. Upper: the boundary of the bucket holding the k-th smallest
    /// observation, k the fewest with k/n > q and n·KL(k/n ‖ q) ≥ log(1/δ); it is below ξ only if at least k of n
    /// observations fell below ξ, each with probability at most q, so with probability at most
    /// P(Bin(n, q) ≥ k) ≤ δ (Chernoff). Lower: the largest boundary with at most m observations at or below it, m
    /// the most with m/n < q and n·KL(m/n ‖ q) ≥ log(1/δ); it is above ξ only if at most m observations were at or
    /// below ξ, probability at most P(Bin(n, q) ≤ m) ≤ δ. Nil without a `+Inf` bucket or observations, or when n is
    /// too small for any such k (upper) or m (lower): the bound is then ∞ (upper) or 0 (lower).
    static func quantileBound(_ buckets: [HistogramBucket], quantile q: Double, upper: Bool, delta: Double) -> Double? {
        let sorted = buckets.filter { !$0.upperBound.isNaN }.sorted { $0.upperBound < $1.upperBound }
        guard let all = sorted.last, all.upperBound == .infinity, all.count >= 1, q > 0, q < 1 else { return nil }
        let n = all.count.rounded(.down)
        let budget = Double.log(1 / delta)
        if upper {
            var k = (q * n).rounded(.down) + 1
            while k <= n && n * kl(k / n, q) < budget { k += 1 }
            guard k <= n else { return nil }
            return sorted.first { $0.count >= k }?.upperBound
        }
        var m = (q * n).rounded(.up) - 1
        while m >= 0 && n * kl(m / n, q) < budget { m -= 1 }
        guard m >= 0 else { return nil }
        return sorted.last { $0.count <= m }?.upperBound ?? 0
    }

    static func chernoffBound(_ counts: Counts, upper: Bool, delta: Double) -> Double {
        let c = counts.clamped
        guard c.trials > 0 else { return upper ? 1 : 0 }
        let n = Double(c.trials)
        let pHat = Double(c.events) / n
        let budget = Double.log(1 / delta) / n
        // KL(p̂ ‖ p) grows monotonically as p moves away from p̂: bisect between p̂ and the end of [0, 1].
        var inside = pHat
        var outside = upper ? 1.0 : 0.0
        if kl(pHat, outside) <= budget { return outside }
        for _ in 0..<200 {
            let mid = (inside + outside) / 2
            if mid == inside || mid == outside { break }
            if kl(pHat, mid) <= budget { inside = mid } else { outside = mid }
        }
        // The exact bound lies in [inside, outside]: the outer end keeps the bound conservative.
        return outside
    }
}
