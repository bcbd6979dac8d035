#if canImport(Glibc)
import Glibc
#endif
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

/// The executor tests' helpers in Tests/Servers/executors/fixture.py, started with the kit's `ServerProcess`.
enum Fixture {
    static let script = "executors/fixture.py"

    /// An HTTP server answering every GET with `body`.
    static func serve(body: String) async throws -> ServerProcess {
        try await ServerProcess.python(script, ["serve", "--body", body])
    }

    /// A recording HTTP server: every request becomes a JSON line in `log`.
    static func record(log: String) async throws -> ServerProcess {
        try await ServerProcess.python(script, ["record", "--log", log])
    }

    /// The requests a recording server received.
    static func recorded(_ log: String) throws -> [JSONValue] {
        try (TestFiles.read(log) ?? "").split(separator: "\n").map { try JSONParser.parse(String($0)) }
    }

    /// How many non-count requests a `serve` server has answered.
    static func count(_ s: ServerProcess) async throws -> Int {
        let r = await HTTPClient.shared.send(.get("\(s.base)/__count", options: patientHTTP()))
        guard case let .success(resp) = r, resp.status == 200, let n = Int(resp.text.trimmed) else {
            throw TestFailure("count of \(s.base): \(r)")
        }
        return n
    }

    /// Polls `count(s)` until it is at least `n`.
    @discardableResult
    static func waitForCount(_ s: ServerProcess, atLeast n: Int, _ what: String) async throws -> Int {
        try await waitFor(what) { () async throws -> Int? in
            let c = try await count(s)
            return c >= n ? c : nil
        }
    }

    /// A client requesting `url` in a loop (fixture.py client) until `stop`.
    struct Client {
        var process: ServerProcess
        var stopFile: String
        var out: String
    }

    /// Starts a client; it has had its first answer when this returns.
    static func client(url: String, dir: ScratchDir, name: String = "client") async throws -> Client {
        let stopFile = dir.sub("\(name).stop"), out = dir.sub("\(name).json")
        let process = try await ServerProcess.python(
            script, ["client", "--url", url, "--stop-file", stopFile, "--out", out])
        return Client(process: process, stopFile: stopFile, out: out)
    }

    struct ClientResult {
        var ok: Int
        var failed: Int
        var errors: [String]
        var bodies: [String: Int]
        /// (seconds since the epoch, body) each time the body changed.
        var transitions: [(Double, String)]
    }

    /// Tells the client to stop and reads what it saw (it finishes the request under way first).
    static func stop(_ c: Client) async throws -> ClientResult {
        let fd = open(c.stopFile, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        if fd >= 0 { close(fd) }
        let text = try await waitFor("the client's result in \(c.out)", explain: { c.process.output }) {
            TestFiles.read(c.out)
        }
        c.process.stop()
        let v = try JSONParser.parse(text)
        func n(_ k: String) -> Int { if case let .number(x)? = v[k] { return Int(x) }; return -1 }
        var bodies: [String: Int] = [:]
        if case let .object(m)? = v["bodies"] { for (k, x) in m { if case let .number(c) = x { bodies[k] = Int(c) } } }
        var transitions: [(Double, String)] = []
        if case let .array(items)? = v["transitions"] {
            for item in items {
                if case let .array(pair) = item, pair.count == 2, case let .number(t) = pair[0],
                    case let .string(b) = pair[1]
                {
                    transitions.append((t, b))
                }
            }
        }
        var errors: [String] = []
        if case let .array(items)? = v["errors"] { for case let .string(e) in items { errors.append(e) } }
        return ClientResult(ok: n("ok"), failed: n("failed"), errors: errors, bodies: bodies, transitions: transitions)
    }

    /// Seconds since the epoch, to compare with the client's `transitions` (Python's time.time()).
    static func wallClock() -> Double { Double(SystemTime.now().millisecondsSinceEpoch) / 1000 }
}

/// Stops the daemons nginx and haproxy leave behind (by their pid files; tests' clean-up:
/// `defer { reaper.killAll() }`).
final class Reaper: @unchecked Sendable {
    private var pidFiles: [String] = []
    func add(pidFile: String) { pidFiles.append(pidFile) }
    func killAll() {
        for f in pidFiles {
            if let t = TestFiles.read(f), let pid = pid_t(t.trimmed), pid > 1 { kill(pid, SIGTERM) }
        }
    }
}

/// Runs a plan with a fresh lock in `state`.
func runPlan(
    _ executor: any RollbackExecutor, from: String, to: String, incident: String = "inc-1",
    state: String
) async throws -> ExecutionOutcome {
    let lock = try RollbackLock.acquire(stateDirectory: state, holder: "test")
    defer { lock.release() }
    let runner = ExecutionRunner(executor: executor, stateDirectory: state)
    return await runner.execute(executor.plan(from: from, to: to, incident: incident), holding: lock)
}
