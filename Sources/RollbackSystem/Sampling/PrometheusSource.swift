import RollbackCore

/// A `prometheus` metric: an instant query to a Prometheus server's HTTP API (`GET /api/v1/query`). A scalar or a
/// one-element vector gives the value; anything else gives no-data with the reason.
public struct PrometheusSource: ReportingSource {
    public let metricNames: [String]
    public let config: PrometheusConfig
    private let client: HTTPClient

    public init(name: String, config: PrometheusConfig, client: HTTPClient = .shared) {
        metricNames = [name]
        self.config = config
        self.client = client
    }

    /// The query endpoint, `<url>/api/v1/query`.
    public var endpoint: String {
        (config.url.hasSuffix("/") ? String(config.url.dropLast()) : config.url) + "/api/v1/query"
    }

    /// The full query URL.
    public var queryURL: String { "\(endpoint)?query=\(percentEncode(config.query))" }

    public func report(now: Timestamp) async -> SourceReport {
        let name = metricNames[0]
        let r = await client.send(
            HTTPRequest(url: queryURL, headers: [("Accept", "application/json")], options: config.http))
        var notes: [String] = []
        let value = interpret(r, notes: &notes)
        return SourceReport(samples: [name: value], notes: notes.isEmpty ? [:] : [name: notes])
    }

    func interpret(_ r: Result<HTTPResponse, HTTPError>, notes: inout [String]) -> SampleValue {
        let q = "query \(config.query)"
        let resp: HTTPResponse
        switch r {
        case let .failure(e):
            // Name the endpoint without the encoded query, which follows in plain text.
            return .noData(reason: "\(HTTPError(url: endpoint, kind: e.kind).description) (\(q))")
        case let .success(s): resp = s
        }
        guard let json = try? JSONParser.parse(bytes: resp.body) else {
            if !resp.isSuccess {
                return .noData(reason: "HTTP \(resp.status) from \(config.url) for \(q): \(Reasons.excerpt(resp.body))")
            }
            return .noData(reason: "the answer of \(config.url) to \(q) is not JSON: \(Reasons.excerpt(resp.body))")
        }
        if case let .array(warnings)? = json["warnings"] {
            notes.append(contentsOf: warnings.compactMap(\.plainText).map { "Prometheus warns: \($0)" })
        }
        if json["status"] == .string("error") || !resp.isSuccess {
            let type = json["errorType"]?.plainText ?? "HTTP \(resp.status)"
            let message = json["error"]?.plainText ?? Reasons.excerpt(resp.body)
            return .noData(reason: "\(config.url) rejected \(q): \(type): \(message)")
        }
        guard json["status"] == .string("success"), let data = json["data"],
            let type = data["resultType"]?.plainText, let result = data["result"]
        else {
            return .noData(reason: "unexpected answer of \(config.url) to \(q): \(Reasons.excerpt(resp.body))")
        }
        let pair: JSONValue
        switch type {
        case "scalar":
            pair = result
        case "vector":
            guard case let .array(items) = result else {
                return .noData(reason: "unexpected answer of \(config.url) to \(q): result is not a list")
            }
            if items.isEmpty {
                return .noData(reason: "empty result for \(q) at \(config.url) (no series matched)")
            }
            if items.count > 1 {
                return .noData(
                    reason: "\(q) returned \(items.count) series; aggregate it to one (for example with sum(…))")
            }
            guard let v = items[0]["value"] else {
                return .noData(reason: "unexpected answer of \(config.url) to \(q): the series has no value")
            }
            pair = v
        default:
            return .noData(reason: "\(q) returned a \(type); a scalar or a one-element vector is needed")
        }
        guard case let .array(tv) = pair, tv.count == 2, let text = tv[1].plainText,
            let value = ExpositionParser.parseValue(text)
        else {
            return .noData(
                reason: "unexpected answer of \(config.url) to \(q): \(pair.serialized) is not [time, \"value\"]")
        }
        if value.isNaN { return .noData(reason: "\(q) returned NaN (0/0: nothing to divide in the range?)") }
        if value.isInfinite {
            return .noData(reason: "\(q) returned \(value > 0 ? "+Inf" : "-Inf") (a division by zero?)")
        }
        return .value(value)
    }
}
