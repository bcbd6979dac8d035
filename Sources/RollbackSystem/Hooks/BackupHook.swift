import RollbackCore

/// The optional pre-rollback backup hook (`rollback.backup`): an argv run before an automatic rollback with
/// `ROLLBACKD_BACKUP_NAME=pre-rollback-<UTC timestamp>` (plus FROM/TO/INCIDENT) in its environment. The rollback
/// goes ahead only when it exits 0 within the phase timeout.
public enum BackupHook {
    public struct Result: Sendable, Equatable {
        public var name: String
        public var seconds: Double
        /// The hook's standard output, trimmed (e.g. where it put the backup).
        public var output: String
    }

    /// `pre-rollback-20261122T135300Z`.
    public static func backupName(at: Timestamp) -> String { "pre-rollback-\(at.compactUTC)" }

    public static func run(
        _ argv: [String], at: Timestamp, from: String, to: String, incident: String,
        timeout: Interval
    ) async throws(ExecutorError) -> Result {
        let name = backupName(at: at)
        let env = [
            "ROLLBACKD_BACKUP_NAME": name, "ROLLBACKD_FROM": from, "ROLLBACKD_TO": to, "ROLLBACKD_INCIDENT": incident,
        ]
        let r: ProcessResult
        do {
            r = try await Command.run(argv, strategy: "backup", environment: env, timeout: timeout)
        } catch {
            throw ExecutorError(
                "backup", "the pre-rollback backup \(name) failed, so the rollback did not start: \(error.message)")
        }
        return Result(name: name, seconds: r.seconds, output: ExecText.trim(r.stdoutText))
    }
}
