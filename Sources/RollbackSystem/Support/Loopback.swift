#if canImport(Glibc)
import Glibc
#endif

/// Ports on 127.0.0.1 for the demo's instances and the tests' servers.
public enum Loopback {
    /// A TCP port nothing listens on right now (bound to port 0, read back, released): free for a server to take,
    /// and "connection refused" until one does.
    public static func freePort() throws(SystemError) -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", path: "127.0.0.1") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { throw SystemError("bind", path: "127.0.0.1:0") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
