/// What a `probe` metric reports from its health checks.
public enum ProbeMeasure: String, Sendable, CaseIterable {
    /// Share of targets whose last probe failed (0…1).
    case unhealthyRatio
    /// Share of failed probes over the metric's window (0…1).
    case errorRatio
    /// A quantile of probe latency in seconds over the window (`quantile`, default 0.95).
    case latencyQuantile
}

/// What a `scrape` metric computes from the instances' Prometheus exposition.
public enum ScrapeMeasure: String, Sendable, CaseIterable {
    /// errors / all, from counter deltas over the window (`counter`, `errorLabels`).
    case errorRatio
    /// A quantile from histogram bucket deltas over the window (`histogram`, `quantile`).
    case quantile
    /// Per-second rate of a counter over the window, summed over instances (`counter`).
    case rate
    /// The sum of a gauge over instances (`gauge`).
    case gauge
}

/// How a `command` metric turns the program's result into a value.
public enum CommandValue: String, Sendable, CaseIterable {
    /// The number printed on standard output (first line).
    case stdout
    /// The exit status (0 is usually ok).
    case exitStatus
}

/// Where a metric's value comes from.
public enum MetricSourceConfig: Sendable, Equatable {
    case probe(ProbeConfig)
    case scrape(ScrapeConfig)
    case prometheus(PrometheusConfig)
    case command(CommandConfig)

    /// How long a sample stays in this metric's value: a windowed rate or ratio still shows a release's errors for
    /// up to this long after it stopped serving. Nil where rollbackd cannot know (a PromQL range, a command).
    public var lookback: Interval? {
        switch self {
        case let .probe(p): return p.window
        case let .scrape(s): return s.window
        case .prometheus, .command: return nil
        }
    }

    public var typeName: String {
        switch self {
        case .probe: return "probe"
        case .scrape: return "scrape"
        case .prometheus: return "prometheus"
        case .command: return "command"
        }
    }
}

public struct BodyMatch: Sendable, Equatable {
    /// A substring the body must contain.
    public var contains: String?
    /// A JSON field (dot path, e.g. `status` or `checks.db`) that must equal `equals`.
    public var jsonField: String?
    public var equals: JSONValue?
}

public struct ProbeConfig: Sendable, Equatable {
    /// Full URLs to probe (resolved from `targets`, or `instances` + `path`).
    public var targets: [String]
    public var measure: ProbeMeasure
    public var quantile: Double
    public var window: Interval
    public var expect: BodyMatch?
    public var http: HTTPOptions
}

public struct ScrapeConfig: Sendable, Equatable {
    public var targets: [String]
    public var measure: ScrapeMeasure
    /// Counter family name for `errorRatio` and `rate` (e.g. `http_requests_total`).
    public var counter: String?
    /// Label matchers that select error samples: label name → regular expression, fully anchored
    /// (Prometheus `=~` semantics), e.g. `{"code": "5.."}`.
    public var errorLabels: [String: String]
    /// Label matchers that select the samples counted at all (default: every sample of the family).
    public var labels: [String: String]
    /// Histogram family name for `quantile` (without `_bucket`).
    public var histogram: String?
    public var gauge: String?
    public var quantile: Double
    /// Rates and quantiles are computed over this window of recent ticks.
    public var window: Interval
    public var http: HTTPOptions
}

public struct PrometheusConfig: Sendable, Equatable {
    /// Base URL of the Prometheus server, e.g. `http://127.0.0.1:9090`.
    public var url: String
    /// A PromQL expression returning a scalar or a one-element vector.
    public var query: String
    public var http: HTTPOptions
}

public struct CommandConfig: Sendable, Equatable {
    public var argv: [String]
    public var timeout: Interval
    public var value: CommandValue
}

public struct MetricDefinition: Sendable, Equatable {
    public var name: String
    public var description: String?
    /// Unit used when printing values: `ratio` prints as a percentage, `seconds` as ms.
    public var unit: MetricUnit
    public var source: MetricSourceConfig

    /// What evidence its samples carry, so that triggers on it decide by the sequential test: a ratio with its
    /// counts (errors of requests, unhealthy of probed instances), or a latency quantile with the counts of
    /// observations by latency (a bound on the quantile becomes "more than 1 − q of the requests are slower than
    /// the bound"): a scraped histogram's buckets, or the probes' own measured latencies, exact at any bound.
    /// Nil for rates, gauges, `prometheus` and `command`: a value only.
    public var evidence: MetricEvidence? {
        switch source {
        case let .scrape(c):
            switch c.measure {
            case .errorRatio: return .ratio
            case .quantile: return .slowerThan(quantile: c.quantile, exact: false)
            default: return nil
            }
        case let .probe(c):
            switch c.measure {
            case .errorRatio, .unhealthyRatio: return .ratio
            case .latencyQuantile: return .slowerThan(quantile: c.quantile, exact: true)
            }
        case .prometheus, .command: return nil
        }
    }

    public var hasCounts: Bool { evidence != nil }
}

/// The kind of evidence behind a metric's samples.
public enum MetricEvidence: Sendable, Equatable {
    /// Events of trials: the value is their ratio.
    case ratio
    /// Observations by latency behind a quantile `q`: the share slower than a bound is tested against `1 − q`.
    /// `exact`: measured latencies (probes), so any bound is exact; otherwise histogram buckets, where the bound is
    /// rounded up to the first bucket boundary at or above it.
    case slowerThan(quantile: Double, exact: Bool)
}

public enum MetricUnit: String, Sendable, CaseIterable {
    case ratio, seconds, count, perSecond, number
}

extension MetricDefinition {
    static func read(name: String, value: JSONValue, path: String, instances: [String]?, sink: IssueSink)
        -> MetricDefinition?
    {
        guard var obj = ObjectReader(value, path: path, sink: sink) else { return nil }
        let type = obj.read("type", required: true, Read.nonEmptyString)
        let description = obj.read("description", Read.string)
        let explicitUnit = obj.read("unit", Read.choice(MetricUnit.self))
        var source: MetricSourceConfig?

        func targets(_ obj: inout ObjectReader) -> [String]? {
            let explicit = obj.read("targets", Read.stringArray)
            let p = obj.read("path", Read.string)
            if let explicit {
                if p != nil {
                    obj.sink.error(
                        obj.childPath("path"), "give either targets or path (with top-level instances), not both")
                }
                var ok = true
                for (i, t) in explicit.enumerated() where URLParts(t) == nil {
                    obj.sink.error(
                        JSONPath.element(obj.childPath("targets"), i),
                        "\(JSONValue.quote(t)) is not an absolute http:// or https:// URL")
                    ok = false
                }
                if explicit.isEmpty {
                    obj.sink.error(obj.childPath("targets"), "must list at least one URL"); ok = false
                }
                return ok ? explicit : nil
            }
            if let p {
                guard let instances, !instances.isEmpty else {
                    obj.sink.error(obj.childPath("path"), "needs the top-level \"instances\" list of base URLs")
                    return nil
                }
                guard p.hasPrefix("/") else {
                    obj.sink.error(obj.childPath("path"), "\(JSONValue.quote(p)) must start with /")
                    return nil
                }
                return instances.map { base in (base.hasSuffix("/") ? String(base.dropLast()) : base) + p }
            }
            obj.sink.error(obj.path, "needs targets (full URLs) or path (joined to the top-level instances)")
            return nil
        }

        func labelMap(_ key: String, _ obj: inout ObjectReader) -> [String: String] {
            guard let v = obj.value(key) else { return [:] }
            guard var m = ObjectReader(v, path: obj.childPath(key), sink: obj.sink) else { return [:] }
            var out: [String: String] = [:]
            for member in m.members {
                if let r = m.read(member.key, Read.regex) { out[member.key] = r }
            }
            m.finish()
            return out
        }

        var defaultUnit = MetricUnit.number
        switch type {
        case "probe":
            let t = targets(&obj)
            let measure = obj.read("measure", required: true, Read.choice(ProbeMeasure.self))
            let q = obj.read("quantile", Read.ratio) ?? 0.95
            let window = obj.read("window", Read.positiveDuration) ?? .seconds(30)
            var expect: BodyMatch?
            if let ev = obj.value("expect"), var e = ObjectReader(ev, path: obj.childPath("expect"), sink: sink) {
                var m = BodyMatch()
                m.contains = e.read("contains", Read.string)
                m.jsonField = e.read("jsonField", Read.nonEmptyString)
                m.equals = e.value("equals")
                if (m.jsonField == nil) != (m.equals == nil) {
                    sink.error(e.path, "jsonField and equals go together")
                }
                if m.contains == nil && m.jsonField == nil {
                    sink.error(e.path, "needs contains, or jsonField with equals")
                }
                e.finish()
                expect = m
            }
            let http = HTTPOptions.read(from: &obj)
            if let t, let measure {
                source = .probe(
                    ProbeConfig(targets: t, measure: measure, quantile: q, window: window, expect: expect, http: http))
            }
            switch measure {
            case .latencyQuantile: defaultUnit = .seconds
            default: defaultUnit = .ratio
            }
        case "scrape":
            let t = targets(&obj)
            let measure = obj.read("measure", required: true, Read.choice(ScrapeMeasure.self))
            let counter = obj.read("counter", Read.nonEmptyString)
            let histogram = obj.read("histogram", Read.nonEmptyString)
            let gauge = obj.read("gauge", Read.nonEmptyString)
            let errorLabels = labelMap("errorLabels", &obj)
            let labels = labelMap("labels", &obj)
            let q = obj.read("quantile", Read.ratio) ?? 0.95
            let window = obj.read("window", Read.positiveDuration) ?? .seconds(30)
            let http = HTTPOptions.read(from: &obj)
            var ok = true
            switch measure {
            case .errorRatio?:
                if counter == nil {
                    sink.error(obj.childPath("counter"), "is required for measure errorRatio"); ok = false
                }
                if errorLabels.isEmpty && !obj.has("errorLabels") {
                    sink.error(
                        obj.childPath("errorLabels"), "is required for measure errorRatio, e.g. {\"code\": \"5..\"}")
                    ok = false
                } else if case let .object(matchers)? = obj.members.first(where: { $0.key == "errorLabels" })?.value,
                    matchers.isEmpty
                {
                    // No matcher selects every sample: the error ratio would always be 1.
                    sink.error(
                        obj.childPath("errorLabels"),
                        "must name at least one label matcher, e.g. {\"code\": \"5..\"} (an empty set counts every request as an error)"
                    )
                    ok = false
                }
                defaultUnit = .ratio
            case .rate?:
                if counter == nil { sink.error(obj.childPath("counter"), "is required for measure rate"); ok = false }
                defaultUnit = .perSecond
            case .quantile?:
                if histogram == nil {
                    sink.error(obj.childPath("histogram"), "is required for measure quantile"); ok = false
                }
                defaultUnit = .seconds
            case .gauge?:
                if gauge == nil { sink.error(obj.childPath("gauge"), "is required for measure gauge"); ok = false }
            case nil: ok = false
            }
            if let t, let measure, ok {
                source = .scrape(
                    ScrapeConfig(
                        targets: t, measure: measure, counter: counter, errorLabels: errorLabels,
                        labels: labels, histogram: histogram, gauge: gauge, quantile: q,
                        window: window, http: http))
            }
        case "prometheus":
            let url = obj.read("url", required: true, Read.httpURL)
            let query = obj.read("query", required: true, Read.nonEmptyString)
            let http = HTTPOptions.read(from: &obj, defaultTimeout: .seconds(5))
            if let url, let query { source = .prometheus(PrometheusConfig(url: url, query: query, http: http)) }
        case "command":
            let argv = obj.read("argv", required: true, Read.argv)
            let timeout = obj.read("timeout", Read.positiveDuration) ?? .seconds(30)
            let value = obj.read("value", Read.choice(CommandValue.self)) ?? .stdout
            if let argv { source = .command(CommandConfig(argv: argv, timeout: timeout, value: value)) }
        default:
            if let type {
                sink.error(
                    obj.childPath("type"), "\(JSONValue.quote(type)) is not one of probe, scrape, prometheus, command")
            }
            return nil
        }
        obj.finish()
        guard let source else { return nil }
        return MetricDefinition(name: name, description: description, unit: explicitUnit ?? defaultUnit, source: source)
    }
}
