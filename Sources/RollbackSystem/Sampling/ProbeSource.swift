import RollbackCore

/// The `probe` metrics that check the same health URLs the same way: one GET of each target per tick, shared.
///
/// A target is healthy when it answers 2xx within the timeout (and, if configured, the body contains a substring
/// or a JSON field has the expected value). A probe the service answered badly is data, not no-data: a refused
/// connection, a stall after connecting, a non-2xx status or a body mismatch is an unhealthy instance. Dark is not
/// down: a probe that never reached the host (connect timeout, no route, name resolution) says nothing about the
/// release. When no target is reached at all, every measure is no-data (`blind: no target reachable: …`); when some
/// are, the unreachable ones count as unhealthy. A tick in which *no* probe got an answer (each timed out or never
/// reached its host) is blind too (`blind: no target answered within 2s: …`): a stall of the watchdog's own host or
/// network makes every probe of a tick fail so at once, and reading that as N unhealthy instances would roll back a
/// good release because the watchdog went dark. When some probes answered, the silent ones count as unhealthy (a
/// hung instance is the service's doing); docs/decisions.md says why.
public actor ProbeSource: ReportingSource {
    public nonisolated let metricNames: [String]
    public nonisolated let targets: [String]
    private let configs: [ProbeConfig]
    private let http: HTTPOptions
    private let expect: BodyMatch?
    private let client: HTTPClient
    /// Per tick, for the window measures only: how many probes failed and the latencies seen.
    private var history: [(at: Timestamp, probes: Int, failed: Int, latencies: [Double])] = []
    private let keep: Interval
    private let needsHistory: Bool

    /// The result of probing one target once.
    public struct ProbeOutcome: Sendable, Equatable {
        public var target: String
        public var healthy: Bool
        /// The host answered (healthy, or unhealthy by its own doing); false when the probe never reached it.
        public var reached: Bool = true
        /// Nothing came back in time: a timeout before any byte of a body, or the host never reached
        /// (`HTTPError.isSilence`).
        public var silent: Bool = false
        /// Seconds until the answer (or the timeout); nil when no connection was made.
        public var latency: Double?
        public var reason: String?
    }

    /// Every metric must have the same `targets`, `http` and `expect` (the `Sampler` groups them so).
    public init(metrics: [(name: String, config: ProbeConfig)], client: HTTPClient = .shared) {
        metricNames = metrics.map(\.name)
        configs = metrics.map(\.config)
        targets = metrics.first?.config.targets ?? []
        http = metrics.first?.config.http ?? HTTPOptions()
        expect = metrics.first?.config.expect
        self.client = client
        keep = metrics.map(\.config.window).max() ?? .seconds(30)
        needsHistory = metrics.contains { $0.config.measure != .unhealthyRatio }
    }

    /// Probes every target once.
    public func probe() async -> [ProbeOutcome] {
        let results = await client.sendAll(targets.map { HTTPRequest.get($0, options: http).withoutHeaders() })
        return zip(targets, results).map { target, r in
            Self.judge(target: target, r, expect: expect, timeout: http.timeout)
        }
    }

    /// GETs every URL once, all at once, and returns one line per URL that is not healthy (not 2xx in time), e.g.
    /// for post-rollback smoke checks (`DaemonWorld.smoke`).
    public static func failures(
        of urls: [String], options: HTTPOptions = HTTPOptions(),
        client: HTTPClient = .shared
    ) async -> [String] {
        let results = await client.sendAll(urls.map { HTTPRequest.get($0, options: options) })
        return zip(urls, results).compactMap { url, r in
            judge(target: url, r, expect: nil, timeout: options.timeout).reason
        }
    }

    static func judge(target: String, _ r: Result<HTTPResponse, HTTPError>, expect: BodyMatch?, timeout: Interval)
        -> ProbeOutcome
    {
        switch r {
        case let .failure(e):
            var latency: Double?
            if case .timeout = e.kind { latency = timeout.seconds }
            return ProbeOutcome(
                target: target, healthy: false, reached: e.reachedHost, silent: e.isSilence, latency: latency,
                reason: e.description)
        case let .success(resp):
            guard resp.isSuccess else {
                return ProbeOutcome(
                    target: target, healthy: false, latency: resp.timing.total,
                    reason: "HTTP \(resp.status) from \(resp.url)")
            }
            if let problem = bodyProblem(resp, expect) {
                return ProbeOutcome(target: target, healthy: false, latency: resp.timing.total, reason: problem)
            }
            return ProbeOutcome(target: target, healthy: true, latency: resp.timing.total, reason: nil)
        }
    }

    static func bodyProblem(_ resp: HTTPResponse, _ expect: BodyMatch?) -> String? {
        guard let expect else { return nil }
        if let needle = expect.contains, !needle.isEmpty {
            if resp.body.firstRange(of: Array(needle.utf8)) == nil {
                return
                    "the body of \(resp.url) does not contain \(JSONValue.quote(needle)): \(Reasons.excerpt(resp.body))"
            }
        }
        if let field = expect.jsonField, let wanted = expect.equals {
            let json: JSONValue
            do {
                json = try JSONParser.parse(bytes: resp.body)
            } catch {
                return "the body of \(resp.url) is not JSON (\(error)): \(Reasons.excerpt(resp.body))"
            }
            guard let got = json.lookup(dotPath: field) else {
                return "the body of \(resp.url) has no field \(field)"
            }
            if got != wanted {
                return "\(resp.url): \(field) is \(got.serialized), expected \(wanted.serialized)"
            }
        }
        return nil
    }

    public func report(now: Timestamp) async -> SourceReport {
        let outcomes = await probe()
        let failed = outcomes.filter { !$0.healthy }
        if !outcomes.isEmpty && outcomes.allSatisfy(\.silent) {
            // Our own view went dark (nothing answered at all): no measure may read it as the service failing.
            let reached = outcomes.contains(where: \.reached)
            let why =
                (reached ? "blind: no target answered within \(http.timeout): " : "blind: no target reachable: ")
                + Reasons.summary(
                    failed.compactMap(\.reason), of: outcomes.count, limit: 3,
                    what: reached ? "targets silent" : "targets unreachable")
            var out = SourceReport()
            for name in metricNames { out.samples[name] = .noData(reason: why) }
            return out
        }
        if needsHistory {
            history.append((now, outcomes.count, failed.count, outcomes.compactMap(\.latency)))
            history.removeAll { $0.at <= now - keep && $0.at != now }
        }
        var out = SourceReport()
        for (k, name) in metricNames.enumerated() {
            let c = configs[k]
            if !failed.isEmpty {
                out.notes[name] = [
                    Reasons.summary(
                        failed.compactMap(\.reason), of: outcomes.count, limit: 3, what: "targets unhealthy")
                ]
            }
            switch c.measure {
            case .unhealthyRatio:
                out.samples[name] =
                    outcomes.isEmpty
                    ? .noData(reason: "no targets to probe")
                    : .value(Double(failed.count) / Double(outcomes.count))
                if !outcomes.isEmpty {
                    out.counts[name] = Counts(events: Int64(failed.count), trials: Int64(outcomes.count))
                }
            case .errorRatio:
                // This tick's probes are what it adds to the evidence; the window's share is the value shown.
                if !outcomes.isEmpty {
                    out.counts[name] = Counts(events: Int64(failed.count), trials: Int64(outcomes.count))
                }
                let inWindow = history.filter { $0.at > now - c.window || $0.at == now }
                let probes = inWindow.reduce(0) { $0 + $1.probes }
                out.samples[name] =
                    probes == 0
                    ? .noData(reason: "no probes in the last \(c.window)")
                    : .value(Double(inWindow.reduce(0) { $0 + $1.failed }) / Double(probes))
            case .latencyQuantile:
                // This tick's measured latencies are its evidence for a bound on the quantile (exact at any bound).
                let measured = outcomes.compactMap(\.latency)
                if !measured.isEmpty { out.histograms[name] = HistogramBucket.exact(measured) }
                let latencies = history.filter { $0.at > now - c.window || $0.at == now }.flatMap(\.latencies)
                if let q = Self.quantile(c.quantile, latencies) {
                    out.samples[name] = .value(q)
                } else {
                    let why = failed.first?.reason.map { ": \($0)" } ?? ""
                    out.samples[name] = .noData(
                        reason: "no probe of \(targets.count) targets got an answer in the last \(c.window)\(why)")
                }
            }
        }
        return out
    }

    /// The φ-quantile of raw values, interpolating between the closest ranks (as PromQL's `quantile_over_time`).
    static func quantile(_ q: Double, _ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let pos = q * Double(sorted.count - 1)
        let lower = Int(pos.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        let weight = pos - Double(lower)
        return sorted[lower] * (1 - weight) + sorted[upper] * weight
    }
}
