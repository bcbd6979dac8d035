import RollbackSystem

/// The tests' one clock: milliseconds on the monotonic clock, for durations and deadlines. (Wall-clock times that
/// other processes also write, e.g. Python's `time.time()`, compare with `SystemTime.now()`.)
public func monotonicMs() -> Int64 { SystemTime.monotonicMs() }

/// How long the tests wait for a state they expect by default: generous, because the whole suite shares two cores
/// and a state that comes in 100 ms on an idle machine can take many seconds under that load. A bound only ends a
/// wait that would never succeed; nothing waits for it to pass.
public let generousWait: Double = 60

/// Waits (without blocking a thread: every suite shares the cooperative pool) until `condition` holds, checking it
/// every `every`. Throws, naming `what` and `explain()` (a log, say), if it does not hold within `seconds`.
public func waitUntil(
    _ what: String, seconds: Double = generousWait, every: Duration = .milliseconds(50),
    explain: () -> String = { "" }, _ condition: () async throws -> Bool
) async throws {
    _ = try await waitFor(what, seconds: seconds, every: every, explain: explain) { try await condition() ? true : nil }
}

/// Waits until `probe` returns a value, and returns it. Throws like `waitUntil`.
public func waitFor<T>(
    _ what: String, seconds: Double = generousWait, every: Duration = .milliseconds(50),
    explain: () -> String = { "" }, _ probe: () async throws -> T?
) async throws -> T {
    let deadline = monotonicMs() + Int64(seconds * 1000)
    while true {
        if let value = try await probe() { return value }
        if monotonicMs() > deadline {
            let more = explain()
            throw TestFailure("timed out after \(seconds)s waiting for \(what)" + (more.isEmpty ? "" : "\n" + more))
        }
        try await Task.sleep(for: every)
    }
}
