#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// Why an executor (or a gate around it) could not do its job. The message names the command, file, socket or URL
/// at fault, e.g. `symlink: /srv/app/releases/v9 is not a directory`.
public struct ExecutorError: Error, Sendable, Equatable, CustomStringConvertible {
    public var strategy: String
    public var message: String
    public init(_ strategy: String, _ message: String) {
        self.strategy = strategy
        self.message = message
    }
    public var description: String { "\(strategy): \(message)" }

    /// For strategies that cannot tell which release is live (the command, a canary weight, a flag).
    static func versionUnknown(_ strategy: String) -> ExecutorError {
        ExecutorError(strategy, "this strategy cannot tell which release is live; set \"version\" in thresholds.json to {\"type\": \"url\", …} or {\"type\": \"file\", …}")
    }
}

/// The environment every command run on behalf of a rollback gets.
enum RollbackEnvironment {
    static func of(_ plan: RollbackPlan) -> [String: String] {
        ["ROLLBACKD_FROM": plan.from, "ROLLBACKD_TO": plan.to, "ROLLBACKD_INCIDENT": plan.incident,
         "ROLLBACKD_STRATEGY": plan.strategy]
    }
}

/// Running an argv for an executor: a failure to start, a non-zero exit or a timeout becomes an `ExecutorError`
/// naming the argv.
enum Command {
    static func run(_ argv: [String], strategy: String, environment: [String: String] = [:], stdin: [UInt8] = [],
                    timeout: Interval, maxOutputBytes: Int = 1 << 20) async throws(ExecutorError) -> ProcessResult {
        let r = try await output(argv, strategy: strategy, environment: environment, stdin: stdin, timeout: timeout,
                                 maxOutputBytes: maxOutputBytes)
        guard r.succeeded else {
            throw ExecutorError(strategy, "\(ProcessRunner.display(argv)): \(r.summary(timeout: timeout))")
        }
        return r
    }

    /// Like `run`, but a non-zero exit is returned, not thrown (only a failure to start throws).
    static func output(_ argv: [String], strategy: String, environment: [String: String] = [:], stdin: [UInt8] = [],
                       timeout: Interval, maxOutputBytes: Int = 1 << 20) async throws(ExecutorError) -> ProcessResult {
        do {
            return try await ProcessRunner.run(argv, environment: environment, stdin: stdin, timeout: timeout,
                                               maxOutputBytes: maxOutputBytes)
        } catch {
            throw ExecutorError(strategy, error.description)
        }
    }
}

/// Small POSIX helpers the executors share.
enum Paths {
    /// The target of a symbolic link, or nil when `path` is not one.
    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func isSymlink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// Permission bits of a file, or nil when it does not exist.
    static func mode(_ path: String) -> mode_t? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return st.st_mode & 0o7777
    }

    /// Entry names of a directory (no `.`/`..`, no hidden entries), sorted.
    static func list(_ directory: String) throws(SystemError) -> [String] {
        guard let dir = opendir(directory) else { throw SystemError("open directory", path: directory) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { ptr in
                ptr.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasPrefix(".") { continue }
            names.append(name)
        }
        return names.sorted()
    }

    /// A version string usable as one path component (no `/`, not `.` or `..`, no NUL, not empty).
    static func isSafeComponent(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && !s.contains("/") && !s.contains("\0")
    }

    /// A file name for state kept on behalf of an incident or version.
    static func sanitized(_ s: String) -> String {
        let cleaned = String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "_" })
        return cleaned.isEmpty || cleaned.allSatisfy({ $0 == "." }) ? "_" : cleaned
    }
}

/// Orders version strings the way people read them: digit runs compare as numbers (`v1.10` after `v1.9`).
public enum VersionOrder {
    public static func less(_ a: String, _ b: String) -> Bool {
        var i = a.unicodeScalars.makeIterator(), j = b.unicodeScalars.makeIterator()
        var x = i.next(), y = j.next()
        while let cx = x, let cy = y {
            let dx = cx.properties.numericType != nil && cx.isASCII, dy = cy.properties.numericType != nil && cy.isASCII
            if dx && dy {
                var na = "", nb = ""
                while let c = x, c.isASCII, c.properties.numericType != nil { na.unicodeScalars.append(c); x = i.next() }
                while let c = y, c.isASCII, c.properties.numericType != nil { nb.unicodeScalars.append(c); y = j.next() }
                let ta = na.drop { $0 == "0" }, tb = nb.drop { $0 == "0" }
                if ta.count != tb.count { return ta.count < tb.count }
                if ta != tb { return ta < tb }
                continue
            }
            if cx != cy { return cx.value < cy.value }
            x = i.next(); y = j.next()
        }
        return x == nil && y != nil
    }

    /// Newest first.
    public static func newestFirst(_ versions: [String]) -> [String] { versions.sorted { less($1, $0) } }
}

/// A TCP connect check (no bytes sent): does something listen at host:port?
enum TCPProbe {
    static func check(_ hostPort: String, timeout: Interval) async -> String? {
        await BlockingThread.run { checkBlocking(hostPort, timeout: timeout) }
    }

    /// nil when a connection was accepted, otherwise why not.
    static func checkBlocking(_ hostPort: String, timeout: Interval) -> String? {
        guard let colon = hostPort.lastIndex(of: ":"), let port = UInt16(hostPort[hostPort.index(after: colon)...]) else {
            return "\(hostPort) is not host:port"
        }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let first = res else { return "\(hostPort): cannot resolve \(host): \(String(cString: gai_strerror(rc)))" }
        defer { freeaddrinfo(first) }
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            defer { ai = a.pointee.ai_next }
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), a.pointee.ai_protocol)
            if fd < 0 { lastError = String(cString: strerror(errno)); continue }
            defer { close(fd) }
            if connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 { return nil }
            guard errno == EINPROGRESS else { lastError = String(cString: strerror(errno)); continue }
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let n = poll(&p, 1, Int32(max(1, min(timeout.milliseconds, 60_000))))
            if n <= 0 { lastError = "no answer within \(timeout)"; continue }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err == 0 { return nil }
            lastError = String(cString: strerror(err))
        }
        return "\(hostPort): \(lastError)"
    }
}


extension JSONValue {
    /// Parses bytes as JSON, naming the file on error.
    static func parseFile(_ path: String, strategy: String, limit: Int = 16 << 20) throws(ExecutorError) -> JSONValue {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path: path, limit: limit) } catch { throw ExecutorError(strategy, error.description) }
        do { return try JSONParser.parse(bytes: bytes) } catch { throw ExecutorError(strategy, "\(path): invalid JSON at \(error)") }
    }
}

/// Keeps copies of files an executor is about to overwrite, so a failed validation can put them back.
struct SavedCopies {
    let directory: String

    init(stateDirectory: String, strategy: String, plan: RollbackPlan) {
        directory = "\(stateDirectory)/executor/\(strategy)-prev/\(Paths.sanitized(plan.incident))-\(Paths.sanitized(plan.to))"
    }

    func copyPath(index: Int, of file: String) -> String {
        "\(directory)/\(index)-\(Paths.sanitized(file.split(separator: "/").last.map(String.init) ?? file))"
    }

    /// Saves `file` (when it exists and no copy was saved yet: a re-run after a crash keeps the first copy).
    func save(index: Int, of file: String, strategy: String) throws(ExecutorError) {
        let copy = copyPath(index: index, of: file)
        guard !Paths.exists(copy) else { return }
        do {
            try FileIO.makeDirectories(directory, mode: 0o700)
            if Paths.exists(file) {
                let bytes = try FileIO.readAll(path: file)
                try FileIO.writeAtomically(path: copy, bytes: bytes, mode: 0o600)
            } else {
                // Remember that the file did not exist.
                try FileIO.writeAtomically(path: copy + ".absent", bytes: [], mode: 0o600)
                try FileIO.writeAtomically(path: copy, bytes: [], mode: 0o600)
            }
        } catch {
            throw ExecutorError(strategy, "cannot keep a copy of \(file) before changing it: \(error.description)")
        }
    }

    /// Forgets copies kept for `plan` by any strategy (a fresh attempt starts from the live files as they are).
    static func discard(stateDirectory: String, plan: RollbackPlan) {
        let base = "\(stateDirectory)/executor"
        guard let kinds = try? Paths.list(base) else { return }
        for kind in kinds where kind.hasSuffix("-prev") {
            let dir = "\(base)/\(kind)/\(Paths.sanitized(plan.incident))-\(Paths.sanitized(plan.to))"
            guard let names = try? Paths.list(dir) else { continue }
            for n in names { unlink("\(dir)/\(n)") }
            rmdir(dir)
        }
    }

    /// Puts saved copies back. Returns the files restored.
    func restore(_ files: [String], strategy: String) throws(ExecutorError) -> [String] {
        var restored: [String] = []
        for (i, file) in files.enumerated() {
            let copy = copyPath(index: i, of: file)
            guard Paths.exists(copy) else { continue }
            do throws(SystemError) {
                if Paths.exists(copy + ".absent") {
                    if unlink(file) != 0 && errno != ENOENT { throw SystemError("unlink", path: file) }
                } else {
                    let bytes = try FileIO.readAll(path: copy)
                    try FileIO.writeAtomically(path: file, bytes: bytes, mode: Paths.mode(file) ?? 0o644)
                }
                restored.append(file)
            } catch {
                throw ExecutorError(strategy, "cannot restore \(file) from \(copy): \(error.description)")
            }
        }
        return restored
    }
}

/// Text helpers for command output.
enum ExecText {
    static func trim<S: StringProtocol>(_ s: S) -> String {
        var sub = Substring(s)
        while let f = sub.first, f == " " || f == "\t" || f == "\n" || f == "\r" { sub.removeFirst() }
        while let l = sub.last, l == " " || l == "\t" || l == "\n" || l == "\r" { sub.removeLast() }
        return String(sub)
    }

    static func lines(_ s: String) -> [String] {
        s.split(separator: "\n", omittingEmptySubsequences: true).map { trim($0) }.filter { !$0.isEmpty }
    }

    static func fields(_ s: String) -> [String] {
        s.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }
}
