#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// The environment every command run on behalf of a rollback gets.
enum RollbackEnvironment {
    static func of(_ plan: RollbackPlan) -> [String: String] {
        [
            "ROLLBACKD_FROM": plan.from, "ROLLBACKD_TO": plan.to, "ROLLBACKD_INCIDENT": plan.incident,
            "ROLLBACKD_STRATEGY": plan.strategy,
        ]
    }
}

/// Running an argv for an executor: a failure to start, a non-zero exit or a timeout becomes an `ExecutorError`
/// naming the argv.
enum Command {
    static func run(
        _ argv: [String], strategy: String, environment: [String: String] = [:], stdin: [UInt8] = [],
        timeout: Interval, maxOutputBytes: Int = 1 << 20
    ) async throws(ExecutorError) -> ProcessResult {
        let r = try await output(
            argv, strategy: strategy, environment: environment, stdin: stdin, timeout: timeout,
            maxOutputBytes: maxOutputBytes)
        guard r.succeeded else {
            throw ExecutorError(strategy, "\(ProcessRunner.display(argv)): \(r.summary(timeout: timeout))")
        }
        return r
    }

    /// Like `run`, but a non-zero exit is returned, not thrown (only a failure to start throws).
    static func output(
        _ argv: [String], strategy: String, environment: [String: String] = [:], stdin: [UInt8] = [],
        timeout: Interval, maxOutputBytes: Int = 1 << 20
    ) async throws(ExecutorError) -> ProcessResult {
        do {
            return try await ProcessRunner.run(
                argv, environment: environment, stdin: stdin, timeout: timeout,
                maxOutputBytes: maxOutputBytes)
        } catch {
            throw ExecutorError(strategy, error.description)
        }
    }
}
