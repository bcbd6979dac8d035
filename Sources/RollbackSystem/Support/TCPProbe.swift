#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// A TCP connect check (no bytes sent): does something listen at host:port?
enum TCPProbe {
    static func check(_ hostPort: String, timeout: Interval) async -> String? {
        await BlockingThread.run { checkBlocking(hostPort, timeout: timeout) }
    }

    /// nil when a connection was accepted, otherwise why not.
    static func checkBlocking(_ hostPort: String, timeout: Interval) -> String? {
        guard let colon = hostPort.lastIndex(of: ":"), let port = UInt16(hostPort[hostPort.index(after: colon)...])
        else {
            return "\(hostPort) is not host:port"
        }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0, let first = res else {
            return "\(hostPort): cannot resolve \(host): \(String(cString: gai_strerror(rc)))"
        }
        defer { freeaddrinfo(first) }
        var lastError = "no address"
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            defer { ai = a.pointee.ai_next }
            let fd = socket(
                a.pointee.ai_family,
                a.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                a.pointee.ai_protocol)
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
