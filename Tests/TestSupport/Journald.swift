#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem

/// A real systemd-journald for the tests: started by Tests/Servers/journald_harness.py when no journal socket
/// answers (this machine has no systemd as PID 1), once per test process; the harness stops it when the test
/// process exits. A journald that cannot be started fails the test with the harness's reason.
public actor Journald {
    public static let shared = Journald()
    /// One start for every caller: an actor lets a second caller in while the first awaits the harness, and two
    /// harnesses at once would start two journalds fighting over the one socket.
    private var start: Task<Result<String, TestFailure>, Never>?

    public func ensure() async throws -> String {
        let task = start ?? Task { await Self.runHarness() }
        start = task
        return try await task.value.get()
    }

    private static func runHarness() async -> Result<String, TestFailure> {
        let argv = ["python3", RepoPaths.server("journald_harness.py"), "--watch-pid", String(getpid())]
        do {
            let r = try await ProcessRunner.run(argv, timeout: .seconds(120))
            let out = r.stdoutText.trimmed
            if r.succeeded && (out.hasPrefix("started") || out == "existing") { return .success(out) }
            return .failure(
                TestFailure(
                    "systemd-journald could not be started: \(out) \(r.stderrText) (\(r.summary(timeout: .seconds(120))))"
                ))
        } catch {
            return .failure(TestFailure("systemd-journald could not be started: \(error)"))
        }
    }

    public static func ensure() async throws { _ = try await shared.ensure() }
}

/// A SYSLOG_IDENTIFIER no other test (or earlier run) uses, so each test reads back only its own entries.
public func uniqueIdentifier(_ prefix: String) -> String {
    "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
}

/// `journalctl -o json --no-pager MATCHES…`, each line parsed; polls until at least `atLeast` entries are there
/// (journald writes asynchronously) or `seconds` passed, then returns what there is (the caller asserts on it).
public func journalEntries(_ matches: [String], atLeast: Int = 1, seconds: Double = generousWait) async throws
    -> [[String: String]]
{
    let deadline = monotonicMs() + Int64(seconds * 1000)
    var entries: [[String: String]] = []
    while true {
        let r = try await ProcessRunner.run(
            ["journalctl", "-o", "json", "--no-pager", "--all"] + matches, timeout: .seconds(60))
        guard r.succeeded || r.termination == .exited(1) else {
            throw TestFailure("journalctl \(matches.joined(separator: " ")): \(r.summary(timeout: .seconds(60)))")
        }
        entries = []
        for line in r.stdoutText.split(separator: "\n") {
            guard case let .object(members) = try JSONParser.parse(String(line)) else { continue }
            var fields: [String: String] = [:]
            for (k, v) in members {
                switch v {
                case let .string(s): fields[k] = s
                case let .number(n): fields[k] = JSONValue.format(number: n)
                default: break
                }
            }
            entries.append(fields)
        }
        if entries.count >= atLeast || monotonicMs() > deadline { return entries }
        try await Task.sleep(for: .milliseconds(100))
    }
}
