#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
@testable import RollbackSystem

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A real systemd-journald for the tests: started by Tests/Servers/journald_harness.py when no journal socket
/// answers (this machine has no systemd as PID 1), once per test process; the harness stops it when the test
/// process exits. A journald that cannot be started fails the test with the harness's reason.
actor Journald {
    static let shared = Journald()
    /// One start for every caller: an actor lets a second caller in while the first awaits the harness, and two
    /// harnesses at once would start two journalds fighting over the one socket.
    private var start: Task<Result<String, TestFailure>, Never>?

    func ensure() async throws -> String {
        let task = start ?? Task { await Self.runHarness() }
        start = task
        return try await task.value.get()
    }

    private static func runHarness() async -> Result<String, TestFailure> {
        let argv = ["python3", RepoPaths.root + "/Tests/Servers/journald_harness.py", "--watch-pid", String(getpid())]
        do {
            let r = try await ProcessRunner.run(argv, timeout: .seconds(30))
            let out = httpTrim(r.stdoutText)
            if r.succeeded && (out.hasPrefix("started") || out == "existing") { return .success(out) }
            return .failure(TestFailure("systemd-journald could not be started: \(out) \(r.stderrText) (\(r.summary(timeout: .seconds(30))))"))
        } catch {
            return .failure(TestFailure("systemd-journald could not be started: \(error)"))
        }
    }

    static func ensure() async throws { _ = try await shared.ensure() }
}

/// A SYSLOG_IDENTIFIER no other test (or earlier run) uses, so each test reads back only its own entries.
func uniqueIdentifier(_ prefix: String) -> String {
    "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
}

/// `journalctl -o json --no-pager MATCHES…`, each line parsed; polls until at least `atLeast` entries are there
/// (journald writes asynchronously) or 10 s passed.
func journalEntries(_ matches: [String], atLeast: Int = 1) async throws -> [[String: String]] {
    let deadline = monotonicMs() + 10_000
    var entries: [[String: String]] = []
    while true {
        let r = try await ProcessRunner.run(["journalctl", "-o", "json", "--no-pager", "--all"] + matches, timeout: .seconds(20))
        guard r.succeeded || r.termination == .exited(1) else {
            throw TestFailure("journalctl \(matches.joined(separator: " ")): \(r.summary(timeout: .seconds(20)))")
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

/// Runs the rollbackd binary built by `swift build`.
func runRollbackd(_ args: [String], timeout: Interval = .seconds(60)) async throws -> ProcessResult {
    guard FileIO.exists(RepoPaths.binary) else {
        throw TestFailure("\(RepoPaths.binary) is missing: run `swift build` first")
    }
    return try await ProcessRunner.run([RepoPaths.binary] + args, timeout: timeout)
}

/// A fresh temporary directory.
func makeTempDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    guard let p = template.withUnsafeMutableBufferPointer({ buffer in buffer.baseAddress.flatMap { mkdtemp($0) } }) else {
        throw TestFailure("mkdtemp /tmp/\(prefix)-XXXXXX failed")
    }
    return String(cString: p)
}
