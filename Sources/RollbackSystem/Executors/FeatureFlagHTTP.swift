#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// The HTTP variant of the feature-flag strategy: one request (method, URL, JSON body, bearer token from a file).
enum FeatureFlagHTTPCall {
    static func precheck(_ http: FeatureFlagHTTP, strategy: String) throws(ExecutorError) {
        if let token = http.tokenFile {
            guard access(token, R_OK) == 0 else { throw ExecutorError(strategy, "\(token) (the token file) is missing or unreadable") }
        }
    }

    static func describe(_ http: FeatureFlagHTTP) -> String {
        var s = "\(http.method) \(http.url)"
        if let body = http.body { s += " with body \(body.serialized)" }
        if http.tokenFile != nil { s += " (Authorization: Bearer from \(http.tokenFile ?? ""))" }
        return s + ", expecting 2xx"
    }

    static func run(_ http: FeatureFlagHTTP, flag: String, plan: RollbackPlan, timeout: Interval,
                    strategy: String) async throws(ExecutorError) {
        throw ExecutorError(strategy, "\(http.method) \(http.url): the HTTP variant is not available in this build")
    }
}
