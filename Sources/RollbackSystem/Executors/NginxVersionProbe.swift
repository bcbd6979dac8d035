import RollbackCore

/// HTTP checks of the nginx strategy (a colour's version URL, the check URL through nginx), over the shared
/// libcurl client.
enum NginxVersionProbe {
    /// What a colour's version URL reports (the trimmed first line of the body), read like `version.type: url`.
    static func version(url: String, strategy: String) async throws(ExecutorError) -> String {
        let r = await VersionReader(source: .url(url, jsonField: nil, http: HTTPOptions())).read()
        guard let v = r.version else { throw ExecutorError(strategy, r.reason ?? "cannot read the version at \(url)") }
        return v
    }

    /// Polls `url` until it answers 2xx (nginx applies a reload asynchronously) or `within` runs out.
    static func expect2xx(url: String, within: Interval, strategy: String) async throws(ExecutorError) {
        let deadline = ContinuousClock.now + .milliseconds(within.milliseconds)
        var last = ""
        while true {
            var options = HTTPOptions()
            options.timeout = min(.seconds(2), within)
            options.connectTimeout = min(.seconds(1), options.timeout)
            switch await HTTPClient.shared.send(.get(url, options: options)) {
            case let .success(resp) where resp.isSuccess: return
            case let .success(resp): last = "HTTP \(resp.status)"
            case let .failure(e): last = e.description
            }
            if ContinuousClock.now >= deadline { break }
            try? await Task.sleep(for: .milliseconds(100))
        }
        throw ExecutorError(strategy, "GET \(url) did not answer 2xx within \(within) (last: \(last))")
    }
}
