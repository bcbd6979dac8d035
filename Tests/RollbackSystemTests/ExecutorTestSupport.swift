#if canImport(Glibc)
import Glibc
#endif
import Testing
import RollbackCore
@testable import RollbackSystem

/// A scratch directory; the test removes it with `defer { dir.remove() }`.
final class ScratchDir: @unchecked Sendable {
    let path: String

    init(_ label: String = "exec") {
        var template = Array("/tmp/rollbackd-\(label)-XXXXXX".utf8CString)
        let p = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        path = p.map { String(cString: $0) } ?? "/tmp/rollbackd-\(label)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        if p == nil { mkdir(path, 0o700) }
        chmod(path, 0o755)
    }

    func remove() { FileIO.removeTree(path) }

    func sub(_ name: String) -> String { path + "/" + name }

    @discardableResult
    func mkdirs(_ name: String) -> String {
        let p = sub(name)
        try? FileIO.makeDirectories(p, mode: 0o755)
        return p
    }

    @discardableResult
    func write(_ name: String, _ text: String, mode: mode_t = 0o644) -> String {
        let p = sub(name)
        try? FileIO.makeDirectories(FileIO.directory(of: p), mode: 0o755)
        do {
            try FileIO.writeAtomically(path: p, bytes: Array(text.utf8), mode: mode)
        } catch {
            Issue.record("cannot write \(p): \(error)")
        }
        chmod(p, mode)
        return p
    }

    /// A shell script (the test's own helper; the executors never use a shell).
    @discardableResult
    func script(_ name: String, _ body: String) -> String {
        write(name, "#!/bin/sh\n" + body + "\n", mode: 0o755)
    }
}

enum TestFiles {
    static func read(_ path: String) -> String? {
        (try? FileIO.readAll(path: path)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every file, directory and link under `root`: path → mode and content (or link target). Equal snapshots mean
    /// nothing changed (stronger than comparing hashes).
    static func snapshot(_ root: String) -> [String: String] {
        var out: [String: String] = [:]
        func walk(_ dir: String) {
            guard let names = try? Paths.list(dir) else { return }
            for n in names {
                let p = dir + "/" + n
                var st = stat()
                guard lstat(p, &st) == 0 else { continue }
                let mode = String(st.st_mode, radix: 8)
                switch st.st_mode & S_IFMT {
                case S_IFLNK: out[p] = "link \(mode) -> \(Paths.readLink(p) ?? "?")"
                case S_IFDIR: out[p] = "dir \(mode)"; walk(p)
                default: out[p] = "file \(mode) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) fnv \(fnv(read(p) ?? ""))"
                }
            }
        }
        walk(root)
        return out
    }

    /// FNV-1a 64: a content hash for snapshots.
    static func fnv(_ s: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }
}

/// Starts the Python helpers in Tests/Servers/executors (detached; killed by the test).
enum Fixture {
    static var script: String { RepoPaths.root + "/Tests/Servers/executors/fixture.py" }

    struct Server {
        var port: Int
        var pid: pid_t
        var hostPort: String { "127.0.0.1:\(port)" }
    }

    static func json(_ r: ProcessResult, _ what: String) throws -> JSONValue {
        guard r.succeeded else { throw FixtureError("\(what): \(r.summary(timeout: .seconds(20))) \(r.stderrText)") }
        return try JSONParser.parse(r.stdoutText)
    }

    static func serve(body: String) async throws -> Server {
        let r = try await ProcessRunner.run(["python3", script, "serve", "--body", body], timeout: .seconds(20))
        let v = try json(r, "fixture serve")
        guard case let .number(port)? = v["port"], case let .number(pid)? = v["pid"] else { throw FixtureError("fixture serve: \(r.stdoutText)") }
        return Server(port: Int(port), pid: pid_t(pid))
    }

    /// A recording HTTP server: every request becomes a JSON line in `log`.
    static func record(log: String) async throws -> Server {
        let r = try await ProcessRunner.run(["python3", script, "record", "--log", log], timeout: .seconds(20))
        let v = try json(r, "fixture record")
        guard case let .number(port)? = v["port"], case let .number(pid)? = v["pid"] else { throw FixtureError("fixture record: \(r.stdoutText)") }
        return Server(port: Int(port), pid: pid_t(pid))
    }

    /// The requests a recording server received.
    static func recorded(_ log: String) throws -> [JSONValue] {
        try (TestFiles.read(log) ?? "").split(separator: "\n").map { try JSONParser.parse(String($0)) }
    }

    /// How many non-count requests a fixture server has answered.
    static func count(_ s: Server) async throws -> Int {
        let r = try await ProcessRunner.run(["python3", "-c", "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())",
                                             "http://\(s.hostPort)/__count"], timeout: .seconds(10))
        guard r.succeeded, let n = Int(ExecText.trim(r.stdoutText)) else { throw FixtureError("count: \(r.stderrText)") }
        return n
    }

    struct Client {
        var pid: pid_t
        var stopFile: String
        var out: String
    }

    static func client(url: String, dir: ScratchDir, name: String = "client") async throws -> Client {
        let c = Client(pid: 0, stopFile: dir.sub("\(name).stop"), out: dir.sub("\(name).json"))
        let r = try await ProcessRunner.run(["python3", script, "client", "--url", url, "--stop-file", c.stopFile, "--out", c.out],
                                            timeout: .seconds(20))
        let v = try json(r, "fixture client")
        guard case let .number(pid)? = v["pid"] else { throw FixtureError("fixture client: \(r.stdoutText)") }
        return Client(pid: pid_t(pid), stopFile: c.stopFile, out: c.out)
    }

    struct ClientResult {
        var ok: Int
        var failed: Int
        var errors: [String]
        var bodies: [String: Int]
        /// (seconds since the epoch, body) each time the body changed.
        var transitions: [(Double, String)]
    }

    static func stop(_ c: Client) async throws -> ClientResult {
        _ = open(c.stopFile, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        for _ in 0..<200 where !FileIO.exists(c.out) { try await Task.sleep(for: .milliseconds(25)) }
        guard let text = TestFiles.read(c.out) else { kill(c.pid, SIGKILL); throw FixtureError("the client wrote no result") }
        let v = try JSONParser.parse(text)
        func n(_ k: String) -> Int { if case let .number(x)? = v[k] { return Int(x) }; return -1 }
        var bodies: [String: Int] = [:]
        if case let .object(m)? = v["bodies"] { for (k, x) in m { if case let .number(c) = x { bodies[k] = Int(c) } } }
        var transitions: [(Double, String)] = []
        if case let .array(items)? = v["transitions"] {
            for item in items {
                if case let .array(pair) = item, pair.count == 2, case let .number(t) = pair[0], case let .string(b) = pair[1] {
                    transitions.append((t, b))
                }
            }
        }
        var errors: [String] = []
        if case let .array(items)? = v["errors"] { for case let .string(e) in items { errors.append(e) } }
        return ClientResult(ok: n("ok"), failed: n("failed"), errors: errors, bodies: bodies, transitions: transitions)
    }

    /// A free TCP port on 127.0.0.1 (bound and released; the caller retries if someone takes it first).
    static func freePort() -> Int { closedPort() }

    /// Finds a program in the usual places (Debian puts nginx and haproxy in /usr/sbin).
    static func program(_ name: String) -> String? {
        for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"] where access(dir + "/" + name, X_OK) == 0 {
            return dir + "/" + name
        }
        return nil
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Kills the listed processes (tests' clean-up: `defer { reaper.killAll() }`).
final class Reaper: @unchecked Sendable {
    private var pids: [pid_t] = []
    private var pidFiles: [String] = []
    func add(_ pid: pid_t) { pids.append(pid) }
    func add(pidFile: String) { pidFiles.append(pidFile) }
    func killAll() {
        for f in pidFiles {
            if let t = TestFiles.read(f), let pid = pid_t(ExecText.trim(t)), pid > 1 { kill(pid, SIGTERM) }
        }
        for p in pids where p > 1 { kill(p, SIGTERM) }
    }
}

/// Runs a plan with a fresh lock in `state`.
func runPlan(_ executor: any RollbackExecutor, from: String, to: String, incident: String = "inc-1",
             state: String) async throws -> ExecutionOutcome {
    let lock = try RollbackLock.acquire(stateDirectory: state, holder: "test")
    defer { lock.release() }
    let runner = ExecutionRunner(executor: executor, stateDirectory: state)
    return await runner.execute(executor.plan(from: from, to: to, incident: incident), holding: lock)
}
