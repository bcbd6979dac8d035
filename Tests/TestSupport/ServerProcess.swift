#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem

/// The one way the tests start a server (or any helper that must be up before the test goes on): a child process
/// (`ChildProcess`: its own process group, output to a log) that prints `READY <port>` on a line of its own once it
/// listens (`READY 0` for a helper without a port). `start` returns only then: the line is the explicit signal, no
/// test guesses how long a start takes. Stopped (SIGTERM to its group, then SIGKILL) by `stop()` or when released.
/// The Python helpers in Tests/Servers also exit by themselves when the test process goes away.
public final class ServerProcess: Sendable {
    public let port: Int
    public let argv: [String]
    let child: ChildProcess
    let logDir: ScratchDir

    private init(child: ChildProcess, port: Int, argv: [String], logDir: ScratchDir) {
        self.child = child
        self.port = port
        self.argv = argv
        self.logDir = logDir
    }

    deinit { stop() }

    public var pid: pid_t { child.pid }
    public var base: String { "http://127.0.0.1:\(port)" }
    public var hostPort: String { "127.0.0.1:\(port)" }
    /// Everything the process printed (stdout and stderr).
    public var output: String { TestFiles.read(logDir.sub("output.log")) ?? "" }

    /// Starts `argv` and waits up to `seconds` for its `READY <port>` line.
    public static func start(_ argv: [String], seconds: Double = generousWait) async throws -> ServerProcess {
        let logDir = try ScratchDir("server")
        let log = logDir.sub("output.log")
        let child: ChildProcess
        do {
            child = try ChildProcess(argv, log: log)
        } catch {
            logDir.remove()
            throw TestFailure(error.description)
        }
        do {
            let port = try await waitFor(
                "\(ProcessRunner.display(argv)) to print READY <port>", seconds: seconds,
                explain: { "its output: " + (TestFiles.read(log) ?? "") }
            ) { () throws -> Int? in
                let text = TestFiles.read(log) ?? ""
                for line in text.split(separator: "\n") where line.hasPrefix("READY ") {
                    if let port = Int(line.dropFirst(6)) { return port }
                }
                if let end = child.waitExit(timeout: .zero) {
                    throw TestFailure("\(ProcessRunner.display(argv)) exited (\(end)) before it was ready: \(text)")
                }
                return nil
            }
            return ServerProcess(child: child, port: port, argv: argv, logDir: logDir)
        } catch {
            child.stop()
            logDir.remove()
            throw error
        }
    }

    /// A Python helper from Tests/Servers, e.g. `python("fault_server.py")` or `python("executors/fixture.py", …)`,
    /// run by the `python3` on PATH (the one `make test-deps` installs the checkers' packages for).
    public static func python(_ script: String, _ args: [String] = []) async throws -> ServerProcess {
        try await start([python3, RepoPaths.server(script)] + args)
    }

    /// Stops the process and its group; idempotent.
    public func stop() {
        child.stop()
        logDir.remove()
    }
}

/// A loopback port nothing listens on right now (bound, then closed): for a server a test starts (which retries if
/// someone takes it first), or for "connection refused".
public func unusedPort() -> Int {
    // Port 1 is never served on these machines: "connection refused" all the same if no port could be found.
    (try? Loopback.freePort()) ?? 1
}

/// The `python3` a shell would run (first on PATH): `ChildProcess` does not search PATH.
public let python3: String = {
    let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") where access("\(dir)/python3", X_OK) == 0 { return "\(dir)/python3" }
    return "/usr/bin/python3"
}()

/// A program from the usual places (Debian puts nginx and haproxy in /usr/sbin), or nil.
public func program(named name: String) -> String? {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"]
    where access(dir + "/" + name, X_OK) == 0 {
        return dir + "/" + name
    }
    return nil
}

/// Servers shared by the tests of one test process (started once, on first use, never stopped: they exit with
/// the test process).
public actor SharedServers {
    public static let instance = SharedServers()
    private var started: [String: Task<ServerProcess, Error>] = [:]

    public func get(_ key: String, _ start: @escaping @Sendable () async throws -> ServerProcess) async throws
        -> ServerProcess
    {
        if let t = started[key] { return try await t.value }
        let t = Task { try await start() }
        started[key] = t
        return try await t.value
    }

    /// The programmable fault server (Tests/Servers/fault_server.py).
    public static func fault() async throws -> ServerProcess {
        try await instance.get("fault") { try await ServerProcess.python("fault_server.py") }
    }
}

/// HTTP options for a request whose timing the test does not judge: a loopback answer can take seconds on a
/// loaded two-core machine, and a request that times out there would fail the test for the machine's sake.
public func patientHTTP() -> HTTPOptions {
    var o = HTTPOptions()
    o.timeout = .seconds(60)
    o.connectTimeout = .seconds(60)
    return o
}

/// Stores a document on the fault server, served at `/doc/NAME`.
public func putDoc(_ server: ServerProcess, _ name: String, _ body: String, status: Int = 200) async throws {
    try await putDoc(server, name, Array(body.utf8), status: status)
}

public func putDoc(_ server: ServerProcess, _ name: String, _ body: [UInt8], status: Int = 200) async throws {
    let r = await HTTPClient.shared.send(
        HTTPRequest(
            method: "PUT", url: "\(server.base)/doc/\(name)?status=\(status)", body: body,
            options: patientHTTP()))
    guard case let .success(resp) = r, resp.status == 204 else {
        throw TestFailure("cannot store /doc/\(name) on the fault server: \(r)")
    }
}
