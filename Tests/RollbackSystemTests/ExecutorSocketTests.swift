import Testing
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The watchdog and the privileged executor as separate processes on the host: `rollbackd run --exec-socket`
/// and `rollbackd execute` behind systemd's own `systemd-socket-activate --accept --inetd` (the same one-process-per-
/// connection, connection-on-stdin/stdout contract as rollbackd-exec.socket's Accept=yes). The container test runs
/// the same under a booted systemd with the real units; these run in seconds and kill things precisely.
@Suite(.serialized) struct ExecutorSocketTests {
    typealias Scene = DaemonTests.Scene

    /// Starts the socket activator for `rollbackd execute`; its children's stderr (the executor's entries) goes to
    /// exec.log.
    static func startExecutor(_ s: Scene) async throws -> pid_t {
        guard let activate = program(named: "systemd-socket-activate") else {
            throw TestFailure("systemd-socket-activate is missing (Debian package systemd): make test-deps installs it")
        }
        let pid = try s.spawn(
            [
                activate, "--listen=\(s.dir)/exec.sock", "--accept", "--inetd",
                RepoPaths.binary, "execute", "--config", "\(s.dir)/thresholds.json",
                "--daemon-state", "\(s.dir)/state", "--state-dir", "\(s.dir)/exec", "--log-target", "stderr",
                "--group", "adm",
            ],
            log: "\(s.dir)/exec.log")
        try await s.waitFor("the executor socket") { FileIO.exists("\(s.dir)/exec.sock") }
        return pid
    }

    static func execLog(_ s: Scene) -> String { TestFiles.read("\(s.dir)/exec.log") ?? "" }

    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    /// Sends one request line as the test process (root) and returns the last reply (on a thread of its own: it
    /// blocks in poll).
    static func ask(_ socket: String, _ request: ExecRequest) async throws -> ExecReply {
        let r = await BlockingThread.run { Result { try askBlocking(socket, request) } }
        return try r.get()
    }

    static func askBlocking(_ socket: String, _ request: ExecRequest) throws -> ExecReply {
        let fd = try UnixSocket.connect(path: socket)
        defer { close(fd) }
        #expect(UnixSocket.writeAll(fd, ExecWire.line(request)))
        let reader = UnixSocket.LineReader(fd: fd)
        var last: ExecReply?
        while case let .line(bytes) = reader.next(timeoutMs: 60_000, limit: ExecWire.maxLine) {
            last = ExecWire.decode(ExecReply.self, bytes)
            if last?.result != nil { break }
        }
        guard let last else { throw TestFailure("no reply from the executor at \(socket)") }
        return last
    }

    /// Brings v2 live once v1 is known-good and waits until the executor has started `phase`.
    static func goBadAndWaitForPhase(_ s: Scene, _ phase: String) async throws {
        try await s.waitFor("v1 known-good") { s.log.contains("Release v1 is known-good") }
        s.deploy("v2")
        try await s.waitFor("the executor starting phase \(phase)") { execLog(s).contains("phase \(phase) started") }
    }

    static func expectEachPhaseCompletedOnce(_ s: Scene) {
        let log = execLog(s)
        #expect(count("phase swap completed", in: log) == 1, "\(log)")
        #expect(count("phase reload completed", in: log) == 1, "\(log)")
        #expect(count("executor_phase", in: log) > 0)
        let journal = (try? ExecutionRunner.journal(stateDirectory: "\(s.dir)/exec")) ?? nil
        #expect(journal?.status == .finished)
    }

    @Test func killingTheExecutorMidPhaseResumesWithoutRepeatingAPhase() async throws {
        let s = try Scene()
        // The reload phase lasts until the test releases it, so the kill lands inside it.
        try s.writeConfig(interval: "1s", reload: s.gatedReload("release-reload"))
        try await s.startService()
        let activator = try await Self.startExecutor(s)
        try s.startDaemon(["--exec-socket", "\(s.dir)/exec.sock"])
        try await Self.goBadAndWaitForPhase(s, "reload")
        let executors = Processes.children(of: activator)
        try #require(executors.count == 1, "executors running: \(executors)")
        kill(executors[0], SIGKILL)
        // The reload the new executor runs again (and the killed one's orphaned command) may now finish.
        s.release("release-reload")
        // The daemon hears the connection drop, asks again; the new executor resumes after the swap.
        try await s.waitFor("verification after the resumed rollback") { s.log.contains("verification_passed") }
        #expect(s.current().hasSuffix("/releases/v1"))
        #expect(Self.count("phase swap skipped", in: Self.execLog(s)) >= 1)
        Self.expectEachPhaseCompletedOnce(s)
        #expect(Self.count("rollback_started", in: s.log) == 1)
        #expect(!s.log.contains("rollback_failed"), "\(s.log)")
    }

    @Test func killingTheDaemonMidPhaseLetsTheExecutorFinishAndTheRestartFindsItDone() async throws {
        let s = try Scene()
        // The reload phase lasts until the test releases it: the daemon dies, and is back, while it runs.
        try s.writeConfig(interval: "1s", reload: s.gatedReload("release-reload"))
        try await s.startService()
        let activator = try await Self.startExecutor(s)
        let daemon = try s.startDaemon(["--exec-socket", "\(s.dir)/exec.sock"])
        try await Self.goBadAndWaitForPhase(s, "reload")
        s.killAndReap(daemon)
        try s.startDaemon(["--exec-socket", "\(s.dir)/exec.sock"])
        // The restarted daemon asks again: a second executor, waiting for the lock the first one holds.
        try await s.waitFor("the restarted daemon's executor beside the first") {
            Processes.children(of: activator).count == 2
        }
        s.release("release-reload")
        try await s.waitFor("verification after the restart") { s.log.contains("verification_passed") }
        #expect(s.log.contains("Resuming rollback v2 -> v1"))
        #expect(s.current().hasSuffix("/releases/v1"))
        Self.expectEachPhaseCompletedOnce(s)
        try await s.waitFor("the closed incident saved") {
            (try? StateStore(directory: "\(s.dir)/state").load())??.incidents.first?.outcome == .rolledBack
        }
        let state = try #require(try StateStore(directory: "\(s.dir)/state").load())
        #expect(state.activeRollback == nil)
    }

    @Test func theExecutorRefusesWhatTheWatchdogDidNotDecideAndCallersOutsideTheGroup() async throws {
        let s = try Scene()
        try await s.startService()
        _ = try await Self.startExecutor(s)
        try s.startDaemon(["--exec-socket", "\(s.dir)/exec.sock"])
        try await s.waitFor("v1 known-good") { s.log.contains("Release v1 is known-good") }
        // Root asking for a rollback nobody decided: refused by the order gate, nothing changes.
        let reply = try await Self.ask("\(s.dir)/exec.sock", ExecRequest(incident: "made-up", to: "v1", instance: nil))
        #expect(reply.result == "refused" && reply.gate == "order", "\(reply)")
        // A path-like instance name never reaches the file system.
        let sneaky = try await Self.ask("\(s.dir)/exec.sock", ExecRequest(incident: "x", to: "v1", instance: "../etc"))
        #expect(sneaky.result == "refused" && sneaky.gate == "request", "\(sneaky)")
        // uid nobody, in no group: refused by the executor's own peer check (here the socket file lets anyone
        // connect; under systemd its mode 0660 root:rollbackd refuses first).
        chmod(s.dir, 0o755)
        chmod("\(s.dir)/exec.sock", 0o666)
        let probe = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sys.argv[1])
            try:
                s.sendall(b'{"incident": "x", "to": "v1"}\\n')
            except BrokenPipeError:
                pass  # refused before the request was read: the answer is there all the same
            print(s.makefile().readline().strip())
            """
        let r = try await ProcessRunner.run(
            [
                "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                "/usr/bin/python3", "-c", probe, "\(s.dir)/exec.sock",
            ], timeout: .seconds(60))
        #expect(
            r.stdoutText.contains(#""gate":"caller""#) && r.stdoutText.contains(#""result":"refused""#)
                && r.stdoutText.contains("only root and members of group adm"),
            "\(r.stdoutText) \(r.stderrText)")
        // The same uid with the executor's group (here adm) as a supplementary group only, read from the socket
        // (SO_PEERGROUPS): past the caller check, and refused by the order gate like root's made-up request.
        let adm = try #require(UnixSocket.groupID("adm"))
        let member = try await ProcessRunner.run(
            [
                "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--groups=\(adm)",
                "/usr/bin/python3", "-c", probe, "\(s.dir)/exec.sock",
            ], timeout: .seconds(60))
        #expect(
            member.stdoutText.contains(#""gate":"order""#) && member.stdoutText.contains(#""result":"refused""#),
            "\(member.stdoutText) \(member.stderrText)")
        #expect(s.current().hasSuffix("/releases/v1"))
        #expect(Self.execLog(s).contains("uid 65534"))
        #expect(!FileIO.exists("\(s.dir)/exec/rollback-journal.json"))
    }
}
