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

/// What one tick observed: every metric's sample and the version currently live.
public struct Observation: Sendable, Equatable {
    public var at: Timestamp
    public var samples: [String: SampleValue]
    /// The live version, or nil when it could not be read (with the reason).
    public var version: String?
    public var versionReason: String?
    /// During post-rollback verification: smoke URLs that failed this tick, each with its reason.
    public var smokeFailures: [String]

    public init(
        at: Timestamp, samples: [String: SampleValue], version: String?, versionReason: String? = nil,
        smokeFailures: [String] = []
    ) {
        self.at = at
        self.samples = samples
        self.version = version
        self.versionReason = versionReason
        self.smokeFailures = smokeFailures
    }
}
