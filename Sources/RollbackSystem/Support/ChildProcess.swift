#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// A long-running child (argv, never a shell) with its output appended to a log file, in its own process group,
/// stopped with SIGTERM and then SIGKILL. For commands that finish, use `ProcessRunner`.
public final class ChildProcess: Sendable {
    public let argv: [String]
    public let pid: pid_t

    /// Starts `argv`; throws naming the program when it cannot be started.
    public init(_ argv: [String], log: String) throws(ProcessStartError) {
        self.argv = argv
        guard let program = argv.first, !program.isEmpty else {
            throw ProcessStartError(argv: argv, reason: "empty argv")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        ProcessRunner.childDefaults(&attr)
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cargs { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, program, &actions, &attr, &cargs, environ)
        guard rc == 0 else { throw ProcessStartError(argv: argv, reason: String(cString: strerror(rc))) }
        pid = child
    }

    /// SIGTERM to its process group, then SIGKILL after `grace`; waits until it is reaped. Idempotent.
    public func stop(grace: Interval = .seconds(2)) {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) != 0 { return } // already reaped (or exited and reaped now)
        kill(-pid, SIGTERM)
        let deadline = SystemTime.monotonicMs() + grace.milliseconds
        while SystemTime.monotonicMs() < deadline {
            if waitpid(pid, &status, WNOHANG) != 0 { return }
            usleep(10_000)
        }
        kill(-pid, SIGKILL)
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

extension ChildProcess {
    /// Waits up to `timeout` for the child to exit and reaps it; nil when it is still running.
    public func waitExit(timeout: Interval) -> ProcessResult.Termination? {
        let deadline = SystemTime.monotonicMs() + timeout.milliseconds
        var status: Int32 = 0
        while true {
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { break }
            if w < 0 && errno != EINTR { return nil }
            if SystemTime.monotonicMs() > deadline { return nil }
            usleep(20_000)
        }
        return status & 0x7f == 0 ? .exited((status >> 8) & 0xff) : .signalled(status & 0x7f)
    }
}
