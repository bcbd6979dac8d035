/// One observation of a metric: a value, or no-data with a reason the operator can act on.
public enum SampleValue: Sendable, Equatable, Codable {
    case value(Double)
    case noData(reason: String)

    public var number: Double? {
        if case let .value(v) = self { return v }
        return nil
    }
    public var reason: String? {
        if case let .noData(r) = self { return r }
        return nil
    }
}

/// One tick's samples: every metric's value (or no-data), and for counted metrics the counts this tick added
/// behind it (errors of requests, unhealthy of probed instances). Counts from several instances add up exactly.
public struct SampledMetrics: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public var values: [String: SampleValue]
    /// New since the previous tick, per counted metric; absent for metrics without counts (rate, gauge, command…).
    public var counts: [String: Counts]
    /// New since the previous tick, per scraped quantile: the cumulative bucket counts (`le` → observations).
    public var histograms: [String: [HistogramBucket]]
    /// How long each metric's source took to answer this tick, in seconds (metrics sharing a fetch share its time).
    public var seconds: [String: Double]

    public init(
        values: [String: SampleValue], counts: [String: Counts] = [:], histograms: [String: [HistogramBucket]] = [:],
        seconds: [String: Double] = [:]
    ) {
        self.values = values
        self.counts = counts
        self.histograms = histograms
        self.seconds = seconds
    }

    public init(dictionaryLiteral elements: (String, SampleValue)...) {
        self.init(values: Dictionary(elements, uniquingKeysWith: { _, new in new }))
    }
}

/// What one tick observed: every metric's sample and the version currently live.
public struct Observation: Sendable, Equatable {
    public var at: Timestamp
    public var samples: [String: SampleValue]
    /// The counts this tick added behind counted samples (see `SampledMetrics`).
    public var counts: [String: Counts]
    /// The bucket counts this tick added behind scraped quantiles (see `SampledMetrics`).
    public var histograms: [String: [HistogramBucket]]
    /// The live version, or nil when it could not be read (with the reason).
    public var version: String?
    public var versionReason: String?
    /// During post-rollback verification: smoke URLs that failed this tick, each with its reason.
    public var smokeFailures: [String]

    public init(
        at: Timestamp, samples: [String: SampleValue], counts: [String: Counts] = [:],
        histograms: [String: [HistogramBucket]] = [:], version: String?, versionReason: String? = nil,
        smokeFailures: [String] = []
    ) {
        self.at = at
        self.samples = samples
        self.counts = counts
        self.histograms = histograms
        self.version = version
        self.versionReason = versionReason
        self.smokeFailures = smokeFailures
    }
}
