import RollbackCore

/// The `probe` metrics that check the same health URLs the same way: one GET of each target per tick, shared.
///
/// A target is healthy when it answers 2xx within the timeout (and, if configured, the body contains a substring
/// or a JSON field has the expected value). A failed probe is data, not no-data: a refused connection is an
/// unhealthy instance.
public actor ProbeSource: ReportingSource {
    public nonisolated let metricNames: [String]
    public nonisolated let targets: [String]
    private let configs: [ProbeConfig]
    private let http: HTTPOptions
    private let expect: BodyMatch?
    private let client: HTTPClient
    private var history: [(at: Timestamp, results: [ProbeOutcome])] = []
    private let keep: Interval

    /// The result of probing one target once.
    public struct ProbeOutcome: Sendable, Equatable {
        public var target: String
        public var healthy: Bool
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
    }

    /// Probes every target once.
    public func probe() async -> [ProbeOutcome] {
        let results = await client.sendAll(targets.map { HTTPRequest.get($0, options: http) })
        return zip(targets, results).map { target, r in Self.judge(target: target, r, expect: expect, timeout: http.timeout) }
    }

    static func judge(target: String, _ r: Result<HTTPResponse, HTTPError>, expect: BodyMatch?, timeout: Interval) -> ProbeOutcome {
        switch r {
        case let .failure(e):
            var latency: Double?
            if case .timeout = e.kind { latency = timeout.seconds }
            return ProbeOutcome(target: target, healthy: false, latency: latency, reason: e.description)
        case let .success(resp):
            guard resp.isSuccess else {
                return ProbeOutcome(target: target, healthy: false, latency: resp.timing.total,
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
                return "the body of \(resp.url) does not contain \(JSONValue.quote(needle)): \(Reasons.excerpt(resp.body))"
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
        history.append((now, outcomes))
        history.removeAll { $0.at <= now - keep && $0.at != now }
        var out = SourceReport()
        let failed = outcomes.filter { !$0.healthy }
        for (k, name) in metricNames.enumerated() {
            let c = configs[k]
            if !failed.isEmpty {
                out.notes[name] = [Reasons.summary(failed.compactMap(\.reason), of: outcomes.count, limit: 3, what: "targets unhealthy")]
            }
            switch c.measure {
            case .unhealthyRatio:
                out.samples[name] = outcomes.isEmpty ? .noData(reason: "no targets to probe")
                    : .value(Double(failed.count) / Double(outcomes.count))
            case .errorRatio:
                let inWindow = history.filter { $0.at > now - c.window || $0.at == now }.flatMap(\.results)
                out.samples[name] = inWindow.isEmpty ? .noData(reason: "no probes in the last \(c.window)")
                    : .value(Double(inWindow.filter { !$0.healthy }.count) / Double(inWindow.count))
            case .latencyQuantile:
                let latencies = history.filter { $0.at > now - c.window || $0.at == now }.flatMap(\.results).compactMap(\.latency)
                if let q = Self.quantile(c.quantile, latencies) {
                    out.samples[name] = .value(q)
                } else {
                    let why = failed.first?.reason.map { ": \($0)" } ?? ""
                    out.samples[name] = .noData(reason: "no probe of \(targets.count) targets got an answer in the last \(c.window)\(why)")
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
