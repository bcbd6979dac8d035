import RollbackCore
import RollbackSystem

/// Runs the real rollbackd binary (`RepoPaths.binary`, which `make test` builds before the tests) to the end.
public func runRollbackd(
    _ arguments: [String], environment: [String: String] = [:], stdin: [UInt8] = [],
    timeout: Interval = .seconds(120)
) async throws -> ProcessResult {
    guard FileIO.exists(RepoPaths.binary) else {
        throw TestFailure(
            "\(RepoPaths.binary) does not exist: build it first (make test runs swift build --build-tests)")
    }
    do {
        return try await ProcessRunner.run(
            [RepoPaths.binary] + arguments, environment: environment, stdin: stdin,
            timeout: timeout)
    } catch {
        throw TestFailure(error.description)
    }
}
