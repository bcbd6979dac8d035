import RollbackCore

/// The `scrape` metrics that read the same targets with the same HTTP options: one fetch of each target's
/// Prometheus exposition per tick, shared by all of them.
///
/// Error ratios, rates and quantiles come from counter increases over each metric's window (see `CounterWindow`),
/// summed over the instances; gauges are summed over the instances that answered this tick.
public actor ScrapeSource: ReportingSource {
    public nonisolated let metricNames: [String]
    public nonisolated let targets: [String]
    private let http: HTTPOptions
    private let client: HTTPClient
    private let selectors: [ScrapeSelector]
    private let configs: [ScrapeConfig]
    private var windows: [CounterWindow]
    private let keep: Set<String>

    /// Every metric must have the same `targets` and `http` (the `Sampler` groups them so).
    public init(metrics: [(name: String, config: ScrapeConfig)], client: HTTPClient = .shared) {
        metricNames = metrics.map(\.name)
        targets = metrics.first?.config.targets ?? []
        http = metrics.first?.config.http ?? HTTPOptions()
        self.client = client
        configs = metrics.map(\.config)
        let selectors = metrics.map { ScrapeSelector($0.config) }
        self.selectors = selectors
        windows = metrics.map { CounterWindow(window: $0.config.window) }
        keep = selectors.reduce(into: Set<String>()) { $0.formUnion($1.keptNames) }
    }

    public func report(now: Timestamp) async -> SourceReport {
        var request: [HTTPRequest] = []
        request.reserveCapacity(targets.count)
        for t in targets {
            request.append(
                HTTPRequest(url: t, headers: [("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")], options: http)
                    .withoutHeaders())
        }
        let results = await client.sendAll(request)
        var failures: [String] = []
        var anyReached = false
        var anyAnswered = false
        var expositions: [(target: String, exposition: Exposition)] = []
        for (i, r) in results.enumerated() {
            switch r {
            case let .failure(e):
                failures.append(e.description)
                anyReached = anyReached || e.reachedHost
                anyAnswered = anyAnswered || !e.isSilence
            case let .success(resp):
                anyReached = true
                anyAnswered = true
                guard resp.isSuccess else {
                    failures.append("HTTP \(resp.status) from \(resp.url)")
                    continue
                }
                do {
                    expositions.append((targets[i], try ExpositionParser.parse(resp.body, keeping: keep)))
                } catch {
                    failures.append("\(resp.url): \(error)")
                }
            }
        }

        var out = SourceReport()
        for k in metricNames.indices {
            let name = metricNames[k]
            let config = configs[k]
            var missing: [String] = []
            var gauge = 0.0
            var gauges = 0
            for (target, exposition) in expositions {
                switch selectors[k].select(exposition) {
                case let .series(values): windows[k].record(target: target, CounterSnapshot(at: now, values: values))
                case let .gauge(v): gauge += v; gauges += 1
                case let .missing(reason):
                    missing.append("\(reason) of \(target)")
                    // Scraped, but none of the series exist yet (a labelled counter has no children before its
                    // first increment): an empty snapshot, so series that appear later count from zero.
                    if config.measure != .gauge {
                        windows[k].record(target: target, CounterSnapshot(at: now, values: [:]))
                    }
                }
            }
            windows[k].prune(now: now)
            if !failures.isEmpty && !expositions.isEmpty {
                out.notes[name, default: []].append(Reasons.summary(failures, of: targets.count))
            }
            if !missing.isEmpty && missing.count < expositions.count {
                out.notes[name, default: []].append(contentsOf: missing.prefix(3))
            }
            if expositions.isEmpty {
                // Nothing to count. When not one target answered at all, say the watchdog's view is dark.
                let blind =
                    anyAnswered
                    ? ""
                    : anyReached ? "blind: no target answered within \(http.timeout): " : "blind: no target reachable: "
                out.samples[name] = .noData(reason: blind + Reasons.summary(failures, of: targets.count))
                continue
            }
            if config.measure == .gauge {
                out.samples[name] =
                    gauges > 0
                    ? .value(gauge)
                    : .noData(reason: Reasons.summary(missing, of: targets.count, what: "targets lack the series"))
                continue
            }
            let increases = targets.compactMap { windows[k].increase(target: $0, now: now) }
            if missing.count == expositions.count && increases.allSatisfy({ $0.total == 0 }) {
                // No target has the series now and none grew in the window: most likely a wrong name or labels.
                out.samples[name] = .noData(
                    reason: Reasons.summary(missing, of: targets.count, what: "targets lack the series"))
                continue
            }
            if increases.isEmpty {
                out.samples[name] = .noData(
                    reason:
                        "collecting a baseline: \(config.measure.rawValue) needs two scrapes of a target; the first value comes next tick"
                )
                continue
            }
            out.samples[name] = value(config, increases, name: name, notes: &out.notes)
            switch config.measure {
            case .errorRatio:
                out.counts[name] = Self.stepCounts(targets.compactMap { windows[k].lastStep(target: $0, now: now) })
            case .quantile:
                out.histograms[name] = CounterMath.buckets(
                    targets.compactMap { windows[k].lastStep(target: $0, now: now) })
            case .rate, .gauge:
                break
            }
        }
        return out
    }

    private func value(
        _ config: ScrapeConfig, _ increases: [TargetIncrease], name: String,
        notes: inout [String: [String]]
    ) -> SampleValue {
        let selector = selectorDescription(config)
        switch config.measure {
        case .errorRatio:
            let r = CounterMath.errorRatio(increases)
            guard r.total > 0 else {
                return .noData(
                    reason: "no increase of \(selector) in the last \(config.window) on any target (no traffic?)")
            }
            return .value(r.errors / r.total)
        case .rate:
            return .value(CounterMath.rate(increases))
        case .quantile:
            let buckets = CounterMath.buckets(increases)
            let histogram = config.histogram ?? ""
            guard buckets.last?.upperBound == .infinity else {
                return .noData(reason: "\(histogram)_bucket has no le=\"+Inf\" bucket, so no quantile can be computed")
            }
            guard let total = buckets.last?.count, total > 0 else {
                return .noData(
                    reason: "no observations of \(selector) in the last \(config.window) on any target (no traffic?)")
            }
            let r = histogramQuantile(config.quantile, buckets)
            if r.fixedForMonotonicity {
                notes[name, default: []].append(
                    "buckets of \(histogram) were not cumulative; they were fixed for monotonicity as Prometheus does (check the instrumentation)"
                )
            }
            guard r.value.isFinite else {
                return .noData(reason: "the \(config.quantile) quantile of \(histogram) is not a number (\(r.value))")
            }
            return .value(r.value)
        case .gauge:
            return .noData(reason: "internal: gauge handled elsewhere")
        }
    }

    /// Errors and requests this tick added over every target scraped now: whole requests, errors rounded down
    /// and requests up (a counter read between increments never makes the evidence look worse than it is).
    static func stepCounts(_ steps: [TargetIncrease]) -> Counts {
        let r = CounterMath.errorRatio(steps)
        let errors = Int64(max(0, r.errors).rounded(.down))
        return Counts(events: errors, trials: max(errors, Int64(max(0, r.total).rounded(.up))))
    }

    private func selectorDescription(_ c: ScrapeConfig) -> String {
        let name: String
        switch c.measure {
        case .errorRatio, .rate: name = c.counter ?? ""
        case .quantile: name = c.histogram ?? ""
        case .gauge: name = c.gauge ?? ""
        }
        return c.labels.isEmpty ? name : name + LabelMatchers(c.labels).description
    }
}
