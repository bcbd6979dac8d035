import RollbackCore

/// HTTP checks of the nginx strategy (a colour's version URL, the check URL through nginx).
enum NginxVersionProbe {
    static func version(url: String, strategy: String) async throws(ExecutorError) -> String {
        throw ExecutorError(strategy, "GET \(url): version URLs need the HTTP client, which is not in this build")
    }

    static func expect2xx(url: String, within: Interval, strategy: String) async throws(ExecutorError) {
        throw ExecutorError(strategy, "GET \(url): the check URL needs the HTTP client, which is not in this build")
    }
}
