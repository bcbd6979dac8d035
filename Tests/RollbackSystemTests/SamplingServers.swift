#if canImport(Glibc)
import Glibc
#endif
import Synchronization
@testable import RollbackCore
@testable import RollbackSystem

/// A server the tests start for real: a child process that prints `READY <port>` on its first stdout line once it
/// listens. Stopped (SIGTERM, then SIGKILL) by `stop()` or when released.
final class ServerProcess: Sendable {
    struct StartError: Error, CustomStringConvertible {
        var description: String
    }

    let pid: pid_t
    let port: Int
    let argv: [String]
    /// Set once the child is reaped: its pid may then belong to any new process (pid_max is 32768 here), so it is
    /// never signalled again.
    private let reaped = Atomic<Bool>(false)

    private init(pid: pid_t, port: Int, argv: [String]) {
        self.pid = pid
        self.port = port
        self.argv = argv
    }

    deinit { stop() }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Starts `argv` and waits up to `timeout` seconds for its `READY <port>` line.
    static func start(_ argv: [String], timeout: Double = 20, environment: [String: String] = [:]) async throws -> ServerProcess {
        let outcome = await BlockingThread.run { () -> Result<(pid_t, Int), StartError> in
            spawnAndWait(argv, timeout: timeout, environment: environment)
        }
        switch outcome {
        case let .success((pid, port)): return ServerProcess(pid: pid, port: port, argv: argv)
        case let .failure(e): throw e
        }
    }

    /// A Python server from Tests/Servers (run through the watchdog wrapper so it dies with the test process).
    static func python(_ script: String, _ args: [String] = []) async throws -> ServerProcess {
        try await start(["python3", RepoPaths.root + "/Tests/Servers/" + script] + args)
    }

    func stop() {
        guard !reaped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<100 {
            if waitpid(pid, &status, WNOHANG) == pid { return }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
    }

    private static func spawnAndWait(_ argv: [String], timeout: Double,
                                     environment: [String: String]) -> Result<(pid_t, Int), StartError> {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return .failure(StartError(description: "pipe failed")) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        var env: [String] = []
        var e = environ
        while let entry = e.pointee { env.append(String(cString: entry)); e += 1 }
        for (k, v) in environment { env.append("\(k)=\(v)") }
        // The spawning thread may block signals; the server must not inherit that, or SIGTERM would not stop it.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attr, &empty)
        var dfl = sigset_t()
        sigemptyset(&dfl)
        sigaddset(&dfl, SIGTERM)
        sigaddset(&dfl, SIGINT)
        sigaddset(&dfl, SIGPIPE)
        posix_spawnattr_setsigdefault(&attr, &dfl)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer { cArgv.forEach { free($0) }; cEnv.forEach { free($0) } }
        let rc = posix_spawnp(&pid, argv[0], &actions, &attr, cArgv, cEnv)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            return .failure(StartError(description: "cannot start \(argv.joined(separator: " ")): \(String(cString: strerror(rc)))"))
        }
        defer { close(fds[0]) }
        var line: [UInt8] = []
        let deadline = Double(monotonicMs()) / 1000 + timeout
        while true {
            let left = deadline - Double(monotonicMs()) / 1000
            if left <= 0 { break }
            var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
            let n = poll(&p, 1, Int32(left * 1000))
            if n <= 0 { if n < 0 && errno == EINTR { continue }; break }
            var byte: UInt8 = 0
            let r = read(fds[0], &byte, 1)
            if r <= 0 { break }
            if byte == UInt8(ascii: "\n") {
                let text = String(decoding: line, as: UTF8.self)
                if text.hasPrefix("READY "), let port = Int(text.dropFirst(6)) { return .success((pid, port)) }
                line = []
                continue
            }
            line.append(byte)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return .failure(StartError(description: "\(argv.joined(separator: " ")) did not report READY within \(timeout)s (exit status \(status >> 8))"))
    }
}

func monotonicMs() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// A loopback port on which nothing listens (bound, then closed), for "connection refused".
func closedPort() -> Int {
    // Port 1 is never served on these machines: "connection refused" all the same if no port could be found.
    (try? Loopback.freePort()) ?? 1
}

/// Servers shared by the tests of one test process (started once, on first use).
actor SharedServers {
    static let instance = SharedServers()
    private var started: [String: Task<ServerProcess, Error>] = [:]

    func get(_ key: String, _ start: @escaping @Sendable () async throws -> ServerProcess) async throws -> ServerProcess {
        if let t = started[key] { return try await t.value }
        let t = Task { try await start() }
        started[key] = t
        return try await t.value
    }

    /// The programmable fault server (Tests/Servers/fault_server.py).
    static func fault() async throws -> ServerProcess {
        try await instance.get("fault") { try await ServerProcess.python("fault_server.py") }
    }
}

/// Stores a document on the fault server, served at `/doc/NAME`.
func putDoc(_ server: ServerProcess, _ name: String, _ body: String, status: Int = 200) async throws {
    try await putDoc(server, name, Array(body.utf8), status: status)
}

func putDoc(_ server: ServerProcess, _ name: String, _ body: [UInt8], status: Int = 200) async throws {
    let r = await HTTPClient.shared.send(HTTPRequest(method: "PUT", url: "\(server.base)/doc/\(name)?status=\(status)", body: body))
    guard case let .success(resp) = r, resp.status == 204 else {
        throw ServerProcess.StartError(description: "cannot store /doc/\(name) on the fault server: \(r)")
    }
}
