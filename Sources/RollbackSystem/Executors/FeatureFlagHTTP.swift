#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// The HTTP variant of the feature-flag strategy: one request (method, URL, JSON body, bearer token from a file)
/// over the shared libcurl client; any 2xx is success. PUT/PATCH/DELETE that set the flag off are idempotent by
/// nature; a POST endpoint must be too, since an interrupted phase is sent again.
enum FeatureFlagHTTPCall {
    static func precheck(_ http: FeatureFlagHTTP, strategy: String) throws(ExecutorError) {
        if let token = http.tokenFile {
            guard access(token, R_OK) == 0 else {
                throw ExecutorError(strategy, "\(token) (the token file) is missing or unreadable")
            }
        }
    }

    static func describe(_ http: FeatureFlagHTTP) -> String {
        var s = "\(http.method) \(HTTPError.redact(http.url))"
        if let body = http.body { s += " with body \(body.serialized)" }
        if let token = http.tokenFile { s += " (Authorization: Bearer from \(token))" }
        return s + ", expecting 2xx"
    }

    static func request(_ http: FeatureFlagHTTP, timeout: Interval) -> HTTPRequest {
        var options = http.options
        options.bearerTokenFile = http.tokenFile ?? options.bearerTokenFile
        options.timeout = min(options.timeout, timeout)
        options.connectTimeout = min(options.connectTimeout, options.timeout)
        var headers: [(name: String, value: String)] = [("Accept", "application/json")]
        var body: [UInt8] = []
        if let b = http.body {
            headers.append(("Content-Type", "application/json"))
            body = Array(b.serialized.utf8)
        }
        return HTTPRequest(method: http.method, url: http.url, headers: headers, body: body, options: options)
    }

    static func run(
        _ http: FeatureFlagHTTP, flag: String, plan: RollbackPlan, timeout: Interval,
        strategy: String
    ) async throws(ExecutorError) {
        let req = request(http, timeout: timeout)
        switch await HTTPClient.shared.send(req) {
        case let .failure(e):
            throw ExecutorError(strategy, "\(http.method) for flag \(flag): \(e.description)")
        case let .success(resp) where !resp.isSuccess:
            let excerpt = ExecText.trim(String(resp.text.prefix(200)))
            throw ExecutorError(
                strategy,
                "\(http.method) \(resp.url) for flag \(flag): HTTP \(resp.status)\(excerpt.isEmpty ? "" : ": \(excerpt)")"
            )
        case .success:
            return
        }
    }
}
