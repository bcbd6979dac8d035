/// One bucket of a classic (cumulative) histogram: the number of observations ≤ `upperBound`.
public struct HistogramBucket: Sendable, Equatable, Codable {
    public var upperBound: Double
    public var count: Double
    public init(upperBound: Double, count: Double) {
        self.upperBound = upperBound
        self.count = count
    }
}

extension HistogramBucket {
    /// Cumulative histograms added bound by bound (the counts of two ticks, two instances or two hosts).
    public static func sum(_ a: [HistogramBucket], _ b: [HistogramBucket]) -> [HistogramBucket] {
        var byBound: [Double: Double] = [:]
        for x in a + b where !x.upperBound.isNaN { byBound[x.upperBound, default: 0] += x.count }
        return byBound.map { HistogramBucket(upperBound: $0.key, count: $0.value) }.sorted {
            $0.upperBound < $1.upperBound
        }
    }

    /// A cumulative histogram of measured values that is exact at every bound: a boundary at each distinct value
    /// and just below it (the next lower double), and `+Inf`. The first boundary at or above any bound T then
    /// counts exactly the values ≤ T (`Counts.slower(than:in:)`), since no value lies between T and it.
    public static func exact(_ values: [Double]) -> [HistogramBucket] {
        let sorted = values.filter { !$0.isNaN }.sorted()
        var buckets: [HistogramBucket] = []
        buckets.reserveCapacity(2 * sorted.count + 1)
        var i = 0
        while i < sorted.count {
            let v = sorted[i]
            var j = i
            while j < sorted.count && sorted[j] == v { j += 1 }
            if v != .infinity {
                buckets.append(HistogramBucket(upperBound: v.nextDown, count: Double(i)))
                buckets.append(HistogramBucket(upperBound: v, count: Double(j)))
            }
            i = j
        }
        buckets.append(HistogramBucket(upperBound: .infinity, count: Double(sorted.count)))
        return buckets
    }
}

/// The outcome of `histogramQuantile`.
public struct QuantileResult: Sendable, Equatable {
    /// NaN where Prometheus returns NaN (no `+Inf` bucket, fewer than two buckets, no observations).
    public var value: Double
    /// True when bucket counts decreased and were raised to keep them cumulative (Prometheus flags this with
    /// "input to histogram_quantile needed to be fixed for monotonicity").
    public var fixedForMonotonicity: Bool

    public static func == (a: QuantileResult, b: QuantileResult) -> Bool {
        (a.value == b.value || (a.value.isNaN && b.value.isNaN)) && a.fixedForMonotonicity == b.fixedForMonotonicity
    }
}

/// PromQL's `histogram_quantile(φ, b)` for classic histograms, with the same special cases:
/// - φ < 0 gives -Inf, φ > 1 gives +Inf, φ NaN gives NaN;
/// - the highest bucket must be `+Inf` (else NaN); fewer than two buckets, or no observations, give NaN;
/// - buckets with the same upper bound are merged (summed);
/// - differences between consecutive buckets smaller than 1e-12 of their sum are taken as rounding noise, and any
///   remaining decrease is raised to the previous count (flagged);
/// - linear interpolation inside the bucket where the rank falls, the lowest bucket starting at 0 when its upper
///   bound is positive (else its upper bound is returned);
/// - a rank in the `+Inf` bucket returns the upper bound of the second-highest bucket.
public func histogramQuantile(_ q: Double, _ input: [HistogramBucket]) -> QuantileResult {
    if q.isNaN { return QuantileResult(value: .nan, fixedForMonotonicity: false) }
    if q < 0 { return QuantileResult(value: -.infinity, fixedForMonotonicity: false) }
    if q > 1 { return QuantileResult(value: .infinity, fixedForMonotonicity: false) }
    var buckets = input.filter { !$0.upperBound.isNaN }.sorted { $0.upperBound < $1.upperBound }
    guard let last = buckets.last, last.upperBound == .infinity else {
        return QuantileResult(value: .nan, fixedForMonotonicity: false)
    }
    // Merge buckets with equal upper bounds.
    var merged: [HistogramBucket] = []
    merged.reserveCapacity(buckets.count)
    for b in buckets {
        if let l = merged.last, l.upperBound == b.upperBound {
            merged[merged.count - 1].count += b.count
        } else {
            merged.append(b)
        }
    }
    buckets = merged
    // Monotonicity: ignore tiny relative differences, then force the rest.
    var fixed = false
    if var previous = buckets.first?.count {
        for k in buckets.indices.dropFirst() {
            let c = buckets[k].count
            if c == previous { continue }
            if abs(c - previous) <= 1e-12 * (abs(c) + abs(previous)) {
                buckets[k].count = previous // floating point noise, in either direction
                continue
            }
            if c < previous {
                buckets[k].count = previous
                fixed = true
                continue
            }
            previous = c
        }
    }
    guard buckets.count >= 2 else { return QuantileResult(value: .nan, fixedForMonotonicity: fixed) }
    let observations = buckets[buckets.count - 1].count
    guard observations > 0, !observations.isNaN else { return QuantileResult(value: .nan, fixedForMonotonicity: fixed) }
    var rank = q * observations
    // The first bucket (excluding +Inf) whose cumulative count reaches the rank.
    var b = buckets.count - 1
    for k in 0..<(buckets.count - 1) where buckets[k].count >= rank {
        b = k
        break
    }
    if b == buckets.count - 1 {
        return QuantileResult(value: buckets[buckets.count - 2].upperBound, fixedForMonotonicity: fixed)
    }
    if b == 0 && buckets[0].upperBound <= 0 {
        return QuantileResult(value: buckets[0].upperBound, fixedForMonotonicity: fixed)
    }
    var bucketStart = 0.0
    let bucketEnd = buckets[b].upperBound
    var count = buckets[b].count
    if b > 0 {
        bucketStart = buckets[b - 1].upperBound
        count -= buckets[b - 1].count
        rank -= buckets[b - 1].count
    }
    return QuantileResult(value: bucketStart + (bucketEnd - bucketStart) * (rank / count), fixedForMonotonicity: fixed)
}
