/// Counted outcomes: `events` of `trials` (errors of requests, requests slower than a bound of the requests
/// observed, unhealthy of probed instances). The unit of evidence of ``EvidenceTest``.
///
/// Sums are exact integers. They saturate at `Int64.max` instead of trapping: a daemon must not crash on a
/// counter that a broken exporter reports as absurdly large.
public struct Counts: Sendable, Hashable, Codable, CustomStringConvertible {
    public var events: Int64
    public var trials: Int64

    public init(events: Int64, trials: Int64) {
        self.events = events
        self.trials = trials
    }

    public static let zero = Counts(events: 0, trials: 0)

    /// `events / trials`, or nil with no trials.
    public var ratio: Double? {
        trials > 0 ? Double(events) / Double(trials) : nil
    }

    /// The same counts made consistent: `0 ≤ events ≤ trials`. A negative count (a counter reset read as a
    /// decrease) becomes 0, and more events than trials are capped at the trials.
    public var clamped: Counts {
        let t = max(0, trials)
        return Counts(events: min(max(0, events), t), trials: t)
    }

    public static func + (a: Counts, b: Counts) -> Counts {
        Counts(events: saturatingAdd(a.events, b.events), trials: saturatingAdd(a.trials, b.trials))
    }

    public static func += (a: inout Counts, b: Counts) {
        a = a + b
    }

    /// `"31 of 53"`.
    public var description: String { "\(events) of \(trials)" }

    private static func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        guard overflow else { return sum }
        return b > 0 ? .max : .min
    }
}

extension Counts {
    /// Observations of a cumulative histogram slower than `bound`: those above the first bucket boundary at or
    /// above it (a boundary is where a histogram can tell; below it the bound is rounded up, so the count never
    /// overstates), of all observations (the `+Inf` bucket). Nil without a `+Inf` bucket or a boundary ≥ bound.
    public static func slower(than bound: Double, in buckets: [HistogramBucket]) -> (counts: Counts, boundary: Double)?
    {
        let sorted = buckets.filter { !$0.upperBound.isNaN }.sorted { $0.upperBound < $1.upperBound }
        guard let all = sorted.last, all.upperBound == .infinity,
            let at = sorted.first(where: { $0.upperBound >= bound })
        else { return nil }
        let total = Int64(max(0, all.count).rounded(.up))
        let within = Int64(max(0, at.count).rounded(.up))
        return (Counts(events: max(0, total - within), trials: total), at.upperBound)
    }
}
