/// The leader's view of the fleet: the hosts' reports turned into one observation for the engine.
///
/// - **The fleet's version** is the one most live hosts run (a tie goes to the version the ledger has not seen, or
///   saw last: the newer release of a rolling deploy). Evidence comes only from the hosts on it, so hosts that are
///   not yet deployed, or already rolled back, never dilute a release's evidence.
/// - **Counts add up exactly**: each host numbers its ticks, and the leader adds every host tick once (none twice,
///   however its own ticks fall against the host's; a new leader starts from what the hosts report next).
/// - **Values without counts** aggregate by a fixed rule per measure: `rate` and the scrape `gauge` add up (they
///   are sums over instances already); ratios are weighted by their counts this tick; everything else (latency
///   quantiles, `prometheus`, `command`) takes the highest host's value, the most alarming for an `above`
///   condition. Counted triggers decide on the summed counts, not on these values.
/// - A host without data for a metric contributes nothing to it; the metric has no data only when no host on the
///   fleet's version has it (a host that went dark never reads as a failure).
public struct FleetEvidence: Sendable, Equatable {
    /// Per host: the daemon run (`epoch`) and the last tick whose counts were added.
    public private(set) var consumed: [String: Consumed] = [:]

    public struct Consumed: Sendable, Equatable {
        public var epoch: String
        public var seq: Int64
    }

    public init() {}

    /// What the leader hands the engine this tick.
    public struct View: Sendable, Equatable {
        public var observation: Observation
        /// The hosts on the fleet's version (the evidence's sources), sorted.
        public var hosts: [String]
        /// Every live host's version (nil: unreadable).
        public var versions: [String: String?]
        /// What every host on the fleet's version can deploy (nil: none can tell).
        public var deployable: Set<String>?
    }

    /// Adds what each host reported since the last call. `ledger` orders versions for a tie; a host seen for the
    /// first time by this leader (`consumed` empty: a new leader) counts from its next tick on.
    public mutating func view(
        of reports: [HostReport], metrics: [MetricDefinition], ledger: ReleaseLedger, at now: Timestamp
    ) -> View {
        let sorted = reports.sorted { $0.host < $1.host }
        let version = Self.fleetVersion(sorted, ledger: ledger)
        var versions: [String: String?] = [:]
        for r in sorted { versions[r.host] = r.version }
        let on = sorted.filter { version != nil && $0.version == version }

        var counts: [String: Counts] = [:]
        var histograms: [String: [HistogramBucket]] = [:]
        var thisTick: [String: [String: Counts]] = [:]
        for r in sorted {
            let fresh = newTicks(of: r)
            guard r.version == version else { continue }
            for t in fresh {
                for (m, c) in t.counts {
                    counts[m, default: .zero] += c.clamped
                    thisTick[r.host, default: [:]][m, default: .zero] += c.clamped
                }
                for (m, b) in t.histograms { histograms[m] = HistogramBucket.sum(histograms[m] ?? [], b) }
            }
        }
        // Forget hosts that left, so that one returning with the same daemon run is not skipped forever.
        let live = Set(sorted.map(\.host))
        consumed = consumed.filter { live.contains($0.key) }

        var samples: [String: SampleValue] = [:]
        for m in metrics {
            samples[m.name] = Self.aggregate(m, on: on, weights: thisTick)
        }
        var deployable: Set<String>?
        for r in on {
            guard let d = r.deployable else { continue }
            deployable = deployable.map { $0.intersection(d) } ?? Set(d)
        }
        let smoke = on.flatMap { r in r.smokeFailures.map { "\(r.host): \($0)" } }
        var reason: String?
        if version == nil {
            reason =
                sorted.isEmpty
                ? "no host reports to the fleet"
                : "no host can read its live version: "
                    + sorted.map { "\($0.host): \($0.versionReason ?? "unknown")" }.joined(separator: "; ")
        }
        let obs = Observation(
            at: now, samples: samples, counts: counts, histograms: histograms, version: version,
            versionReason: reason, smokeFailures: smoke)
        return View(observation: obs, hosts: on.map(\.host), versions: versions, deployable: deployable)
    }

    /// The host's ticks not yet added, and marks them added.
    private mutating func newTicks(of r: HostReport) -> [HostTick] {
        guard let seen = consumed[r.host], seen.epoch == r.epoch else {
            // A new leader (or a host it has not seen): start after what is there now. A restarted host (new
            // epoch) that this leader saw before: all its ticks are new.
            let restarted = consumed[r.host] != nil
            consumed[r.host] = Consumed(epoch: r.epoch, seq: r.seq)
            return restarted ? r.ticks : []
        }
        consumed[r.host] = Consumed(epoch: r.epoch, seq: max(seen.seq, r.seq))
        return r.ticks.filter { $0.seq > seen.seq }
    }

    static func fleetVersion(_ reports: [HostReport], ledger: ReleaseLedger) -> String? {
        var byVersion: [String: Int] = [:]
        for r in reports { if let v = r.version { byVersion[v, default: 0] += 1 } }
        func seen(_ v: String) -> Timestamp? { ledger.release(v)?.firstSeenAt }
        return byVersion.max { a, b in
            if a.value != b.value { return a.value < b.value }
            // Unseen beats seen; later first sight beats earlier; then by name, so every leader agrees.
            switch (seen(a.key), seen(b.key)) {
            case (nil, nil): return a.key < b.key
            case (nil, _): return false
            case (_, nil): return true
            case let (x?, y?): return x == y ? a.key < b.key : x < y
            }
        }?.key
    }

    /// One metric's fleet value from the hosts on the fleet's version.
    static func aggregate(_ m: MetricDefinition, on hosts: [HostReport], weights: [String: [String: Counts]])
        -> SampleValue
    {
        var values: [(host: String, value: Double)] = []
        var reasons: [String] = []
        for r in hosts {
            switch r.samples[m.name] {
            case let .value(v)?: values.append((r.host, v))
            case let .noData(reason)?: reasons.append("\(r.host): \(reason)")
            case nil: reasons.append("\(r.host): not reported")
            }
        }
        guard !values.isEmpty else {
            return .noData(reason: reasons.isEmpty ? "no host on the fleet's version" : reasons.joined(separator: "; "))
        }
        switch rule(for: m) {
        case .sum:
            return .value(values.reduce(0) { $0 + $1.value })
        case .max:
            return .value(values.map(\.value).max()!)
        case .weighted:
            var total = 0.0
            var weight = 0.0
            for (host, v) in values {
                let w = Double(weights[host]?[m.name]?.trials ?? 0)
                total += v * w
                weight += w
            }
            if weight > 0 { return .value(total / weight) }
            return .value(values.reduce(0) { $0 + $1.value } / Double(values.count))
        }
    }

    /// How a metric's values add up across hosts.
    public enum Rule: String, Sendable {
        case sum, max, weighted
    }

    public static func rule(for m: MetricDefinition) -> Rule {
        switch m.source {
        case let .scrape(c):
            switch c.measure {
            case .rate, .gauge: return .sum
            case .errorRatio: return .weighted
            case .quantile: return .max
            }
        case let .probe(p):
            return p.measure == .latencyQuantile ? .max : .weighted
        case .prometheus, .command:
            return .max
        }
    }
}
