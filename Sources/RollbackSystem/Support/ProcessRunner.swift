#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// How a command ended.
public struct ProcessResult: Sendable, Equatable {
    public enum Termination: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
        /// Killed (SIGTERM, then SIGKILL to its process group) after the timeout.
        case timedOut
    }
    public var termination: Termination
    public var stdout: [UInt8]
    public var stderr: [UInt8]
    /// True when output beyond `maxOutputBytes` was discarded.
    public var truncated: Bool
    public var seconds: Double

    public var succeeded: Bool { termination == .exited(0) }
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }

    /// `exit status 3: <last stderr line>` / `killed by signal 9` / `timed out after 2s`.
    public func summary(timeout: Interval) -> String {
        let tail = stderrText.split(separator: "\n").last.map { ": \($0)" } ?? ""
        switch termination {
        case let .exited(code): return "exit status \(code)\(tail)"
        case let .signalled(sig): return "killed by signal \(sig)\(tail)"
        case .timedOut: return "timed out after \(timeout)"
        }
    }
}

/// A command that could not be started.
public struct ProcessStartError: Error, Sendable, CustomStringConvertible {
    public var argv: [String]
    public var reason: String
    public var description: String { "cannot run \(ProcessRunner.display(argv)): \(reason)" }
}

/// Runs an argv (never a shell) with a timeout, capturing output. The child gets its own process group so a
/// timeout kills everything it started.
public enum ProcessRunner {
    /// `["a", "b c"]` → `a 'b c'`, for messages only (never executed).
    public static func display(_ argv: [String]) -> String {
        argv.map { arg in
            let safe = !arg.isEmpty && arg.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:@%+,".contains($0) }
            return safe ? arg : "'" + arg.replacing("'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }

    /// - Parameters:
    ///   - environment: added to (and overriding) the inherited environment.
    ///   - stdin: written to the child's standard input, which is then closed.
    public static func run(
        _ argv: [String], environment: [String: String] = [:], stdin: [UInt8] = [],
        timeout: Interval,
        maxOutputBytes: Int = 1 << 20
    ) async throws(ProcessStartError) -> ProcessResult {
        let outcome = await BlockingThread.run { () -> Result<ProcessResult, ProcessStartError> in
            runBlocking(argv, environment: environment, stdin: stdin, timeout: timeout, maxOutputBytes: maxOutputBytes)
        }
        return try outcome.get()
    }

    /// Every child rollbackd starts: its own process group (so a stop reaches its children too), no blocked
    /// signals, and the default action for the signals the daemon handles itself.
    static func childDefaults(_ attr: inout posix_spawnattr_t) {
        posix_spawnattr_setpgroup(&attr, 0)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attr, &mask)
        var dfl = sigset_t()
        sigemptyset(&dfl)
        for s in [SIGPIPE, SIGTERM, SIGHUP, SIGINT] { sigaddset(&dfl, s) }
        posix_spawnattr_setsigdefault(&attr, &dfl)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    }

    static func runBlocking(
        _ argv: [String], environment: [String: String], stdin input: [UInt8],
        timeout: Interval,
        maxOutputBytes: Int
    ) -> Result<ProcessResult, ProcessStartError> {
        guard let program = argv.first, !program.isEmpty else {
            return .failure(ProcessStartError(argv: argv, reason: "empty argv"))
        }
        var inPipe: [Int32] = [0, 0], outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
        func cloexecPipe(_ fds: inout [Int32]) -> Bool {
            guard pipe(&fds) == 0 else { return false }
            _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
            return true
        }
        guard cloexecPipe(&inPipe), cloexecPipe(&outPipe), cloexecPipe(&errPipe) else {
            return .failure(ProcessStartError(argv: argv, reason: "pipe: \(String(cString: strerror(errno)))"))
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        Self.childDefaults(&attr)

        var env: [String: String] = [:]
        var e = environ
        while let entry = e.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { env[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            e += 1
        }
        for (k, v) in environment { env[k] = v }
        let envStrings = env.map { "\($0.key)=\($0.value)" }

        var pid: pid_t = 0
        let started = SystemTime.monotonicMs()
        var rc: Int32 = 0
        // ETXTBSY: a script just written is still open for writing in a child another thread is spawning
        // (the moment between its fork and exec). It passes within milliseconds; retry a few times.
        for attempt in 0..<20 {
            rc = withCStrings(argv) { cArgv in
                withCStrings(envStrings) { cEnv in
                    program.contains("/")
                        ? posix_spawn(&pid, program, &actions, &attr, cArgv, cEnv)
                        : posix_spawnp(&pid, program, &actions, &attr, cArgv, cEnv)
                }
            }
            if rc != ETXTBSY { break }
            usleep(useconds_t(5_000 * (attempt + 1)))
        }
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        guard rc == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            return .failure(ProcessStartError(argv: argv, reason: String(cString: strerror(rc))))
        }

        var out: [UInt8] = [], err: [UInt8] = []
        var truncated = false
        var inputOffset = 0
        var inFD: Int32 = inPipe[1]
        if input.isEmpty { close(inFD); inFD = -1 } else { _ = fcntl(inFD, F_SETFL, fcntl(inFD, F_GETFL) | O_NONBLOCK) }
        var outFD = outPipe[0], errFD = errPipe[0]
        let deadline = started + timeout.milliseconds
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 65536)
        while outFD >= 0 || errFD >= 0 {
            let remaining = deadline - SystemTime.monotonicMs()
            if remaining <= 0 { timedOut = true; break }
            var fds: [pollfd] = []
            if outFD >= 0 { fds.append(pollfd(fd: outFD, events: Int16(POLLIN), revents: 0)) }
            if errFD >= 0 { fds.append(pollfd(fd: errFD, events: Int16(POLLIN), revents: 0)) }
            if inFD >= 0 { fds.append(pollfd(fd: inFD, events: Int16(POLLOUT), revents: 0)) }
            let n = poll(&fds, nfds_t(fds.count), Int32(min(remaining, 1000)))
            if n < 0 { if errno == EINTR { continue }; break }
            for p in fds where p.revents != 0 {
                if p.fd == inFD {
                    let w = input.withUnsafeBytes { write(inFD, $0.baseAddress! + inputOffset, $0.count - inputOffset) }
                    if w > 0 { inputOffset += w }
                    if w < 0 && errno != EAGAIN || inputOffset >= input.count { close(inFD); inFD = -1 }
                    continue
                }
                let r = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if r <= 0 {
                    if r < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                    close(p.fd)
                    if p.fd == outFD { outFD = -1 } else { errFD = -1 }
                    continue
                }
                if p.fd == outFD {
                    if out.count < maxOutputBytes {
                        out.append(contentsOf: buffer[0..<min(r, maxOutputBytes - out.count)])
                    }
                    if out.count >= maxOutputBytes { truncated = true }
                } else {
                    if err.count < maxOutputBytes {
                        err.append(contentsOf: buffer[0..<min(r, maxOutputBytes - err.count)])
                    }
                    if err.count >= maxOutputBytes { truncated = true }
                }
            }
        }
        if inFD >= 0 { close(inFD) }
        var status: Int32 = 0
        if timedOut {
            kill(-pid, SIGTERM)
            // Give it a moment to exit, then make sure.
            var waited: Int32 = 0
            for _ in 0..<20 {
                waited = waitpid(pid, &status, WNOHANG)
                if waited == pid { break }
                usleep(10_000)
            }
            kill(-pid, SIGKILL)
            if waited != pid { while waitpid(pid, &status, 0) < 0 && errno == EINTR {} }
        } else {
            // Output closed; the child may still run (it closed its stdout): wait until the deadline.
            while true {
                let w = waitpid(pid, &status, WNOHANG)
                if w == pid { break }
                if w < 0 && errno != EINTR { break }
                if SystemTime.monotonicMs() >= deadline {
                    timedOut = true
                    kill(-pid, SIGKILL)
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    break
                }
                usleep(2000)
            }
        }
        if outFD >= 0 { close(outFD) }
        if errFD >= 0 { close(errFD) }
        let termination: ProcessResult.Termination
        if timedOut {
            termination = .timedOut
        } else if status & 0x7f == 0 {
            termination = .exited((status >> 8) & 0xff)
        } else {
            termination = .signalled(status & 0x7f)
        }
        return .success(
            ProcessResult(
                termination: termination, stdout: out, stderr: err, truncated: truncated,
                seconds: Double(SystemTime.monotonicMs() - started) / 1000))
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return body(pointers)
    }
}
