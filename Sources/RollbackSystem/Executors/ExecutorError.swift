#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// Why an executor (or a gate around it) could not do its job. The message names the command, file, socket or URL
/// at fault, e.g. `symlink: /srv/app/releases/v9 is not a directory`.
public struct ExecutorError: Error, Sendable, Equatable, CustomStringConvertible {
    public var strategy: String
    public var message: String
    public init(_ strategy: String, _ message: String) {
        self.strategy = strategy
        self.message = message
    }
    public var description: String { "\(strategy): \(message)" }

    /// For strategies that cannot tell which release is live (the command, a canary weight, a flag).
    static func versionUnknown(_ strategy: String) -> ExecutorError {
        ExecutorError(
            strategy,
            "this strategy cannot tell which release is live; set \"version\" in thresholds.json to {\"type\": \"url\", …} or {\"type\": \"file\", …}"
        )
    }
}
