#if canImport(Glibc)
import Glibc
#endif

/// Small helpers over AF_UNIX stream sockets (the control socket and the executor socket).
public enum UnixSocket {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        public init(description: String) { self.description = description }
    }

    /// The credentials of the process at the other end (SO_PEERCRED), plus its supplementary groups
    /// (SO_PEERGROUPS).
    public struct Peer: Sendable, Equatable {
        public var pid: Int32
        public var uid: UInt32
        public var gid: UInt32
        public var groups: [UInt32]
        public var label: String { "uid \(uid)" }
    }

    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) throws(Failure) -> R {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else {
            throw Failure(description: "\(path): socket path longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Creates a listening socket at `path` (replacing a stale one) with the given mode.
    public static func listen(path: String, mode: mode_t, backlog: Int32 = 16) throws(Failure) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        unlink(path)
        let old = umask(0o177)
        let rc = try withAddress(path) { bind(fd, $0, $1) }
        umask(old)
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw Failure(description: "bind \(path): \(String(cString: strerror(e)))")
        }
        chmod(path, mode)
        guard Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            close(fd)
            throw Failure(description: "listen \(path): \(String(cString: strerror(e)))")
        }
        return fd
    }

    public static func connect(path: String) throws(Failure) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        let rc = try withAddress(path) { Glibc.connect(fd, $0, $1) }
        guard rc == 0 else {
            let e = errno
            close(fd)
            var hint = ""
            if e == ENOENT || e == ECONNREFUSED { hint = " (is rollbackd running?)" }
            if e == EACCES {
                hint = " (only root and members of group \(socketGroup(path).map(groupName) ?? "rollbackd") may use it)"
            }
            throw Failure(description: "connect \(path): \(String(cString: strerror(e)))\(hint)")
        }
        return fd
    }

    /// The group owning the socket at `path`, or its directory's when the socket cannot be looked at (a 0750
    /// directory refuses outsiders before the socket does).
    static func socketGroup(_ path: String) -> UInt32? {
        var st = stat()
        if stat(path, &st) == 0 { return UInt32(st.st_gid) }
        if stat(FileIO.directory(of: path), &st) == 0 { return UInt32(st.st_gid) }
        return nil
    }

    /// A group's name ("gid N" when it has none).
    public static func groupName(_ gid: UInt32) -> String {
        guard let g = getgrgid(gid_t(gid)), let name = g.pointee.gr_name else { return "gid \(gid)" }
        return String(cString: name)
    }

    /// A group's id by name; nil when there is no such group.
    public static func groupID(_ name: String) -> UInt32? {
        guard let g = getgrnam(name) else { return nil }
        return UInt32(g.pointee.gr_gid)
    }

    /// SO_PEERGROUPS (Linux 4.13): the supplementary groups of the peer as they were at connect(). Not every
    /// libc header names it; the number is the kernel's (include/uapi/asm-generic/socket.h).
    static let peerGroupsOption: Int32 = 59

    /// The peer's uid, gid and pid from SO_PEERCRED and its supplementary groups from SO_PEERGROUPS: both from the
    /// socket itself, as the kernel recorded them at connect(), so no /proc read (which `ProtectProc=invisible`
    /// hides for other users' processes) and no race with a reused pid. Nil when `fd` is not a Unix socket.
    public static func peer(_ fd: Int32) -> Peer? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (glibc hides the type without _GNU_SOURCE).
        var raw: (Int32, UInt32, UInt32) = (0, 0, 0)
        var len = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &raw, &len) == 0 else { return nil }
        return Peer(pid: raw.0, uid: raw.1, gid: raw.2, groups: peerGroups(fd) ?? [])
    }

    /// The peer's supplementary groups; nil when the kernel cannot say (before 4.13, or not a Unix socket).
    static func peerGroups(_ fd: Int32) -> [UInt32]? {
        var groups = [UInt32](repeating: 0, count: 64)
        while true {
            var len = socklen_t(groups.count * MemoryLayout<UInt32>.size)
            let rc = groups.withUnsafeMutableBytes {
                getsockopt(fd, SOL_SOCKET, peerGroupsOption, $0.baseAddress, &len)
            }
            if rc == 0 { return Array(groups.prefix(Int(len) / MemoryLayout<UInt32>.size)) }
            // ERANGE: the kernel put the size it needs in len (up to NGROUPS_MAX, 65536 groups).
            guard errno == ERANGE, Int(len) > groups.count * MemoryLayout<UInt32>.size else { return nil }
            groups = [UInt32](repeating: 0, count: Int(len) / MemoryLayout<UInt32>.size + 1)
        }
    }

    /// Bounds how long one send() may block on a peer that does not read (SO_SNDTIMEO): `writeAll` then fails
    /// instead of hanging on a full socket buffer.
    public static func setSendTimeout(_ fd: Int32, milliseconds: Int64) {
        var tv = timeval(tv_sec: Int(milliseconds / 1000), tv_usec: Int(milliseconds % 1000) * 1000)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Reads newline-terminated lines from a stream socket, keeping what follows a newline for the next call.
    public final class LineReader {
        public enum Next: Equatable, Sendable {
            case line([UInt8])
            /// No whole line within the call's deadline.
            case timeout
            /// More than the limit arrived without a newline.
            case tooLong(Int)
            /// The peer closed (a partial last line without a newline is dropped: it is not a whole message).
            case eof
            case failed(String)
        }

        let fd: Int32
        private var buffer: [UInt8] = []

        public init(fd: Int32) { self.fd = fd }

        /// The next line, waiting at most `timeoutMs` in all (a deadline for the whole line, not per read: a peer
        /// dripping one byte at a time cannot stretch it) and buffering at most `limit` bytes.
        public func next(timeoutMs: Int32, limit: Int) -> Next {
            let deadline = SystemTime.monotonicMs() + Int64(timeoutMs)
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(buffer[..<nl])
                    buffer.removeSubrange(...nl)
                    return .line(line)
                }
                if buffer.count > limit { return .tooLong(limit) }
                let remaining = deadline - SystemTime.monotonicMs()
                if remaining <= 0 { return .timeout }
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let r = poll(&p, 1, Int32(remaining))
                if r == 0 { return .timeout }
                if r < 0 { if errno == EINTR { continue }; return .failed(String(cString: strerror(errno))) }
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 { if errno == EINTR { continue }; return .failed(String(cString: strerror(errno))) }
                if n == 0 { return .eof }
                buffer.append(contentsOf: chunk[0..<n])
            }
        }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 { if errno == EINTR { continue }; return false }
            offset += n
        }
        return true
    }
}
