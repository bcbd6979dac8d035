import RollbackCore

/// Everything one tick saw.
public struct SamplerTick: Sendable, Equatable {
    public var at: Timestamp
    /// One sample per metric of the configuration.
    public var samples: [String: SampleValue]
    /// The counts this tick added behind counted samples.
    public var counts: [String: Counts] = [:]
    /// The bucket counts this tick added behind scraped quantiles.
    public var histograms: [String: [HistogramBucket]] = [:]
    /// Remarks per metric even when it has a value (partial failures, fixed histograms, warnings).
    public var notes: [String: [String]]
    public var version: String?
    public var versionReason: String?
    /// Wall time the tick took.
    public var seconds: Double

    public var observation: Observation {
        Observation(
            at: at, samples: samples, counts: counts, histograms: histograms, version: version,
            versionReason: versionReason)
    }
}

/// Builds the metric sources of a configuration and samples them all, concurrently, once per tick.
///
/// Metrics that read the same thing share one fetch: `scrape` metrics with the same targets and HTTP options
/// share one scrape of each target; `probe` metrics with the same targets, options and body check share one probe.
public final class Sampler: Sendable {
    /// Metric names in configuration order.
    public let metricNames: [String]
    public let sources: [any ReportingSource]
    public let versionReader: VersionReader

    /// - Parameter strategyVersion: reads the live version from the rollback strategy, for `"version": {"type":
    ///   "strategy"}` (the executors provide it; without it such a version reads as unknown, with the reason).
    public init(
        thresholds: Thresholds, client: HTTPClient = .shared, strategyVersion: VersionReader.StrategyHook? = nil
    ) {
        metricNames = thresholds.metrics.map(\.name)
        versionReader = VersionReader(source: thresholds.version, client: client, strategy: strategyVersion)
        var scrapeGroups: [(key: ScrapeConfig, members: [(name: String, config: ScrapeConfig)])] = []
        var probeGroups: [(key: ProbeConfig, members: [(name: String, config: ProbeConfig)])] = []
        var others: [any ReportingSource] = []
        for m in thresholds.metrics {
            switch m.source {
            case let .scrape(c):
                if let i = scrapeGroups.firstIndex(where: { $0.key.targets == c.targets && $0.key.http == c.http }) {
                    scrapeGroups[i].members.append((m.name, c))
                } else {
                    scrapeGroups.append((c, [(m.name, c)]))
                }
            case let .probe(c):
                if let i = probeGroups.firstIndex(where: {
                    $0.key.targets == c.targets && $0.key.http == c.http && $0.key.expect == c.expect
                }) {
                    probeGroups[i].members.append((m.name, c))
                } else {
                    probeGroups.append((c, [(m.name, c)]))
                }
            case let .prometheus(c):
                others.append(PrometheusSource(name: m.name, config: c, client: client))
            case let .command(c):
                others.append(CommandSource(name: m.name, config: c))
            }
        }
        sources =
            scrapeGroups.map { ScrapeSource(metrics: $0.members, client: client) as any ReportingSource }
            + probeGroups.map { ProbeSource(metrics: $0.members, client: client) as any ReportingSource }
            + others
    }

    /// One sample per metric, with the counts behind counted ones (the daemon's `DaemonWorld.sample`).
    public func sample(now: Timestamp) async -> SampledMetrics {
        let report = await collect(now: now)
        return SampledMetrics(
            values: report.samples, counts: report.counts, histograms: report.histograms, seconds: report.seconds)
    }

    /// The live version (the daemon's `DaemonWorld.readVersion`).
    public func readVersion() async -> (version: String?, reason: String?) {
        await versionReader.read()
    }

    /// Samples every metric and reads the version, all at once.
    public func tick(now: Timestamp) async -> SamplerTick {
        let started = SystemTime.monotonicMs()
        async let version = versionReader.read()
        let report = await collect(now: now)
        let v = await version
        return SamplerTick(
            at: now, samples: report.samples, counts: report.counts, histograms: report.histograms, notes: report.notes,
            version: v.version,
            versionReason: v.reason, seconds: Double(SystemTime.monotonicMs() - started) / 1000)
    }

    private func collect(now: Timestamp) async -> SourceReport {
        var all = SourceReport()
        await withTaskGroup(of: SourceReport.self) { group in
            for source in sources {
                group.addTask {
                    let started = SystemTime.monotonicMs()
                    var r = await source.report(now: now)
                    let took = Double(SystemTime.monotonicMs() - started) / 1000
                    for name in r.samples.keys { r.seconds[name] = took }
                    return r
                }
            }
            for await r in group { all.merge(r) }
        }
        for name in metricNames where all.samples[name] == nil {
            all.samples[name] = .noData(reason: "internal: no source answered for \(name)")
        }
        return all
    }
}
