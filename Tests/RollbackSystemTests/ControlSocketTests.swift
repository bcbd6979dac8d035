import TestSupport
import Testing
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
#if canImport(Glibc)
import Glibc
#endif

/// The control socket under callers that misbehave: idle connections, a huge request, more callers than allowed.
/// The daemon is the real `Daemon` over an in-memory world (`DaemonWorldTests.Script`), its socket the real
/// `ControlServer`, and `status` is asked by the real `rollbackd status` binary.
@Suite struct ControlSocketTests {
    final class Scene {
        let dir: ScratchDir
        let daemon: Daemon
        let server: ControlServer
        var idle: [Int32] = []
        var socket: String { dir.sub("control.sock") }

        init(_ limits: ControlServer.Limits) throws {
            dir = try ScratchDir("control")
            dir.write("thresholds.json", DaemonWorldTests.config, mode: 0o600)
            let script = DaemonWorldTests.Script()
            daemon = try Daemon(
                options: DaemonOptions(
                    configPath: dir.sub("thresholds.json"), stateDirectory: dir.sub("state"), clock: script.clock),
                makeWorld: { _, _ in script.world() })
            server = try ControlServer(path: dir.sub("control.sock"), daemon: daemon, limits: limits)
            server.start()
        }

        /// Opens `n` connections that send nothing, and waits until the server is serving them all.
        func openIdle(_ n: Int) async throws {
            for _ in 0..<n { idle.append(try UnixSocket.connect(path: socket)) }
            let server = self.server
            try await waitUntil("\(n) idle connections served", explain: { "serving \(server.connections)" }) {
                server.connections >= n
            }
        }

        func closeIdle() {
            for fd in idle { close(fd) }
            idle = []
        }

        /// `status` through the socket, on a thread of its own (the client blocks; the test pool must not).
        func status() async throws -> JSONValue { try await Self.send([("command", .string("status"))], socket) }

        static func send(_ members: [(key: String, value: JSONValue)], _ socket: String) async throws -> JSONValue {
            let request = JSONValue.object(members)
            return try await BlockingThread.run { Result { try ControlClient.send(request, socket: socket) } }.get()
        }

        deinit {
            closeIdle()
            dir.remove()
        }
    }

    @Test func fiftyIdleClientsDelayNeitherStatusNorATick() async throws {
        let s = try Scene(ControlServer.Limits(requestDeadline: .minutes(5)))
        try await s.openIdle(50)
        // The CLI, a process of its own, while the 50 are open.
        let t0 = SystemTime.monotonicMs()
        let cli = try await runRollbackd(["status", "--json", "--socket", s.socket], timeout: .seconds(60))
        let cliMs = SystemTime.monotonicMs() - t0
        #expect(cli.termination == .exited(0), "\(cli.stderrText)")
        let report = try JSONParser.parse(bytes: cli.stdout)
        #expect(report["service"] == .string("svc"), "\(cli.stdoutText)")
        // In process: the socket's own answer time, without a process start.
        let t1 = SystemTime.monotonicMs()
        let answer = try await s.status()
        let inProcessMs = SystemTime.monotonicMs() - t1
        #expect(answer["ok"] == .bool(true))
        // A tick completes while they are open.
        let t2 = SystemTime.monotonicMs()
        await s.daemon.tickOnce()
        let tickMs = SystemTime.monotonicMs() - t2
        #expect(s.server.connections >= 50, "the idle connections were dropped before the end: \(s.server.connections)")
        print(
            "control socket with 50 idle connections: rollbackd status \(cliMs) ms (process included), "
                + "in-process status \(inProcessMs) ms, a tick \(tickMs) ms")
        s.closeIdle()
        let server = s.server
        try await waitUntil("the idle connections released") { server.connections == 0 }
    }

    @Test func aTenMegabyteRequestIsRefusedWithAnError() async throws {
        // A generous deadline: this is about the size limit, not about how fast a loaded machine sends 10 MB.
        let s = try Scene(ControlServer.Limits(requestDeadline: .minutes(5)))
        let huge = String(repeating: "x", count: 10 << 20)
        let answer = try await Scene.send([("command", .string("status")), ("padding", .string(huge))], s.socket)
        #expect(answer["ok"] == .bool(false))
        #expect(answer["error"] == .string("the request is longer than 65536 bytes"), "\(answer.serialized)")
        // The socket goes on serving.
        #expect(try await s.status()["ok"] == .bool(true))
    }

    @Test func aSilentClientIsAnsweredAtItsDeadlineAndReleased() async throws {
        let s = try Scene(ControlServer.Limits(requestDeadline: .ms(300)))
        let fd = try UnixSocket.connect(path: s.socket)
        defer { close(fd) }
        let next = await BlockingThread.run { UnixSocket.LineReader(fd: fd).next(timeoutMs: 60_000, limit: 1 << 16) }
        guard case let .line(bytes) = next else {
            Issue.record("no answer to a silent client")
            return
        }
        let answer = try JSONParser.parse(bytes: bytes)
        #expect(answer["error"] == .string("no request line within 300ms"), "\(answer.serialized)")
        let server = s.server
        try await waitUntil("the silent connection released") { server.connections == 0 }
    }

    @Test func callersBeyondTheBoundAreToldSoAndOthersAreServedAgainOnceOneLeaves() async throws {
        let s = try Scene(ControlServer.Limits(connections: 3, requestDeadline: .minutes(5)))
        try await s.openIdle(3)
        let busy = try await s.status()
        #expect(busy["ok"] == .bool(false))
        #expect(
            busy["error"] == .string("busy: 3 control connections are open already; try again"), "\(busy.serialized)")
        close(s.idle.removeLast())
        let server = s.server
        try await waitUntil("one idle connection released") { server.connections == 2 }
        #expect(try await s.status()["ok"] == .bool(true))
    }

    /// The peer check reads supplementary groups from the socket (SO_PEERGROUPS), not /proc: a caller whose only
    /// tie to the daemon's group is a supplementary group is served; one outside it is refused with the group named.
    /// (The daemon here is this test process, root: its group is root. The socket is opened to everyone so the
    /// daemon's own check, not the file mode, decides.)
    @Test func aSupplementaryGroupMemberIsServedAndAnOutsiderIsToldWhichGroup() async throws {
        let s = try Scene(ControlServer.Limits())
        chmod(s.socket, 0o666)
        let probe = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            try:
                s.sendall(b'{"command": "status"}\\n')
            except BrokenPipeError:
                pass  # refused before the request was read: the answer is there all the same
            print(s.makefile().readline().strip())
            """
        func ask(_ groups: String) async throws -> JSONValue {
            let r = try await ProcessRunner.run(
                [
                    "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", groups, "/usr/bin/python3", "-c", probe,
                    s.socket,
                ], timeout: .seconds(60))
            do { return try JSONParser.parse(bytes: r.stdout) } catch {
                throw TestFailure("no JSON answer: \(r.stdoutText) \(r.stderrText)")
            }
        }
        let group = UnixSocket.groupName(getgid())
        let member = try await ask("--groups=\(getgid())")
        #expect(member["ok"] == .bool(true), "\(member.serialized)")
        let outsider = try await ask("--clear-groups")
        #expect(
            outsider["error"]
                == .string(
                    "permission denied: uid 65534 is not in group \(group); only root and members of group \(group) may control rollbackd"
                ), "\(outsider.serialized)")
    }
}
