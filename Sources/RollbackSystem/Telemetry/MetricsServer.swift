#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import Synchronization

/// Serves `GET /metrics` over HTTP/1.1 on a loopback address or a Unix socket. It runs on threads of its own and
/// renders from whatever `page` returns (a snapshot the daemon published), so a slow or stuck scraper never
/// delays a tick: at most `maxConnections` are served at once (others get 503 at once), and each has
/// `ioTimeoutSeconds` to send its request and read the answer.
public final class MetricsServer: Sendable {
    public let listen: TelemetryListen
    private let fd: Int32
    private let page: @Sendable () -> String
    private let active = Mutex(0)
    private let stopped = Atomic<Bool>(false)
    public let maxConnections: Int
    public let ioTimeoutSeconds: Int

    /// Why the address could not be served, naming it (`telemetry.listen 127.0.0.1:9465: cannot listen: …`).
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    /// Binds and listens; throws with the address named (in use, not permitted, …).
    public init(
        listen: TelemetryListen, maxConnections: Int = 4, ioTimeoutSeconds: Int = 5,
        page: @escaping @Sendable () -> String
    ) throws(MetricsServer.Failure) {
        self.listen = listen
        self.page = page
        self.maxConnections = maxConnections
        self.ioTimeoutSeconds = ioTimeoutSeconds
        switch listen {
        case let .unix(path):
            do { fd = try UnixSocket.listen(path: path, mode: 0o660) } catch {
                throw Failure("telemetry.listen \(path): \(error.description)")
            }
        case let .tcp(host, port):
            fd = try Self.listenTCP(host: host, port: port, label: listen.description)
        }
    }

    private static func listenTCP(host: String, port: Int, label: String) throws(MetricsServer.Failure) -> Int32 {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure("telemetry.listen \(label): socket: \(Self.errnoText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc: Int32
        if v6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = UInt16(port).bigEndian
            inet_pton(AF_INET6, host, &addr.sin6_addr)
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            inet_pton(AF_INET, host, &addr.sin_addr)
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        guard rc == 0, Glibc.listen(fd, 16) == 0 else {
            let text = Self.errnoText()
            close(fd)
            throw Failure("telemetry.listen \(label): cannot listen: \(text)")
        }
        return fd
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    /// Accepts connections on a thread of its own until `stop()`.
    public func start() {
        let server = self
        _ = BlockingThread.start { server.acceptLoop() }
    }

    /// Stops accepting; connections being served finish on their own threads.
    public func stop() {
        stopped.store(true, ordering: .sequentiallyConsistent)
        shutdown(fd, Int32(SHUT_RDWR))
        if case let .unix(path) = listen { unlink(path) }
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .sequentiallyConsistent) {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                break
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            var tv = timeval(tv_sec: ioTimeoutSeconds, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let admitted = active.withLock { n -> Bool in
                guard n < maxConnections else { return false }
                n += 1
                return true
            }
            guard admitted else {
                _ = UnixSocket.writeAll(client, Self.response(503, "too many scrapes at once\n"))
                close(client)
                continue
            }
            let server = self
            let started = BlockingThread.start {
                server.serve(client)
                // The slot is free before the client sees the end of the answer: a scraper that has read one
                // answer to its end is never refused for its own previous request.
                server.active.withLock { $0 -= 1 }
                close(client)
            }
            if !started {
                close(client)
                active.withLock { $0 -= 1 }
            }
        }
        close(fd)
    }

    private func serve(_ client: Int32) {
        guard let head = readHead(client) else { return }
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else {
            _ = UnixSocket.writeAll(client, Self.response(400, "bad request\n"))
            return
        }
        let method = parts[0]
        let target = parts[1].split(separator: "?", maxSplits: 1).first.map(String.init) ?? ""
        guard method == "GET" || method == "HEAD" else {
            _ = UnixSocket.writeAll(client, Self.response(405, "only GET /metrics\n", extra: "Allow: GET, HEAD\r\n"))
            return
        }
        guard target == "/metrics" else {
            _ = UnixSocket.writeAll(client, Self.response(404, "rollbackd serves /metrics only\n"))
            return
        }
        _ = UnixSocket.writeAll(
            client, Self.response(200, page(), contentType: MetricsPage.contentType, headOnly: method == "HEAD"))
    }

    /// Reads the request head (up to the blank line, at most 16 KiB) within `ioTimeoutSeconds` in all, so a client
    /// trickling bytes cannot hold a connection longer; nil on timeout, EOF or an oversized head.
    private func readHead(_ fd: Int32) -> String? {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 2048)
        let deadline = SystemTime.monotonicMs() + Int64(ioTimeoutSeconds) * 1000
        while out.count < 16 << 10 {
            let left = deadline - SystemTime.monotonicMs()
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard left > 0, poll(&p, 1, Int32(left)) > 0 else { return nil }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return nil }
            out.append(contentsOf: buf[0..<n])
            let s = String(decoding: out, as: UTF8.self)
            if s.contains("\r\n\r\n") || s.contains("\n\n") { return s }
        }
        return nil
    }

    static func response(
        _ status: Int, _ body: String, contentType: String = "text/plain; charset=utf-8", extra: String = "",
        headOnly: Bool = false
    ) -> [UInt8] {
        let reason =
            [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"][
                status] ?? "Error"
        let bytes = Array(body.utf8)
        let head =
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bytes.count)\r\n\(extra)Connection: close\r\n\r\n"
        return Array(head.utf8) + (headOnly ? [] : bytes)
    }
}
