// A small service to guard in the demo and the end-to-end tests: /healthz, /version, /metrics (Prometheus text:
// a request counter by status code and a latency histogram) and /api/* routes. How it behaves comes from the
// release it runs: `<release dir>/release.json`, e.g. {"version": "v2", "errorRate": 0.3, "latencyMs": 20}.
// The release dir is normally a `current` symlink, re-resolved every second, so a symlink swap changes behaviour.
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import RollbackCore

struct ReleaseBehaviour: Sendable {
    var version = "unknown"
    var errorRate = 0.0
    var latencyMs = 5.0
    var healthy = true
}

final class DemoService: Sendable {
    let releaseDir: String
    let behaviour = Mutex(ReleaseBehaviour())
    let loadedAt = Mutex(Int64(0))
    /// code → count
    let requests = Mutex([String: Int]())
    /// Histogram bucket upper bounds in seconds, and counts (non-cumulative), sum and count.
    static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
    let histogram = Mutex((buckets: [Int](repeating: 0, count: DemoService.bounds.count + 1), sum: 0.0, count: 0))

    init(releaseDir: String) { self.releaseDir = releaseDir }

    static func nowMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    func currentBehaviour() -> ReleaseBehaviour {
        let now = Self.nowMs()
        let stale = loadedAt.withLock { last -> Bool in
            if now - last >= 1000 { last = now; return true }
            return false
        }
        if stale {
            var b = ReleaseBehaviour()
            let fd = open(releaseDir + "/release.json", O_RDONLY)
            if fd >= 0 {
                var buf = [UInt8](repeating: 0, count: 65536)
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                close(fd)
                if n > 0, let json = try? JSONParser.parse(bytes: Array(buf[0..<n])) {
                    if case let .string(v)? = json["version"] { b.version = v }
                    if case let .number(e)? = json["errorRate"] { b.errorRate = e }
                    if case let .number(l)? = json["latencyMs"] { b.latencyMs = l }
                    if case let .bool(h)? = json["healthy"] { b.healthy = h }
                }
            } else {
                b.healthy = false
            }
            behaviour.withLock { $0 = b }
            return b
        }
        return behaviour.withLock { $0 }
    }

    func record(code: Int, seconds: Double) {
        requests.withLock { $0[String(code), default: 0] += 1 }
        histogram.withLock { h in
            let i = Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count
            h.buckets[i] += 1
            h.sum += seconds
            h.count += 1
        }
    }

    func metrics() -> String {
        var out = "# HELP http_requests_total Requests served, by status code.\n# TYPE http_requests_total counter\n"
        for (code, n) in requests.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            out += "http_requests_total{code=\"\(code)\"} \(n)\n"
        }
        let h = histogram.withLock { $0 }
        out += "# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram\n"
        var cumulative = 0
        for (i, b) in Self.bounds.enumerated() {
            cumulative += h.buckets[i]
            out += "http_request_duration_seconds_bucket{le=\"\(b)\"} \(cumulative)\n"
        }
        cumulative += h.buckets[Self.bounds.count]
        out += "http_request_duration_seconds_bucket{le=\"+Inf\"} \(cumulative)\n"
        out += "http_request_duration_seconds_sum \(h.sum)\nhttp_request_duration_seconds_count \(h.count)\n"
        return out
    }

    /// Returns (status, content type, body).
    func respond(path: String) -> (Int, String, String) {
        let b = currentBehaviour()
        switch path {
        case "/healthz":
            return b.healthy ? (200, "text/plain", "ok\n") : (503, "text/plain", "unhealthy\n")
        case "/version":
            return (200, "text/plain", b.version + "\n")
        case "/metrics":
            return (200, "text/plain; version=0.0.4", metrics())
        default:
            guard path.hasPrefix("/api") else { return (404, "text/plain", "not found\n") }
            let started = Self.nowMs()
            // Latency jitter of ±50% around the release's latency.
            let latency = b.latencyMs * Double.random(in: 0.5...1.5)
            usleep(useconds_t(max(0, latency) * 1000))
            let failed = Double.random(in: 0..<1) < b.errorRate
            let code = failed ? 500 : 200
            record(code: code, seconds: Double(Self.nowMs() - started) / 1000)
            if path == "/api/checkout/probe" {
                return (code, "application/json", failed ? "{\"status\":\"error\"}\n" : "{\"status\":\"ok\"}\n")
            }
            return (code, "text/plain", failed ? "error from \(b.version)\n" : "hello from \(b.version)\n")
        }
    }

    func serve(client: Int32) {
        var request: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 8192)
        while request.count < 65536 {
            let n = buf.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            request.append(contentsOf: buf[0..<n])
            if contains(request, [13, 10, 13, 10]) { break }
        }
        let head = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = head.split(separator: " ")
        var path = parts.count >= 2 ? String(parts[1]) : "/"
        if let q = path.firstIndex(of: "?") { path = String(path[..<q]) }
        let (status, type, body) = respond(path: path)
        let reason =
            status == 200
            ? "OK" : status == 404 ? "Not Found" : status == 503 ? "Service Unavailable" : "Internal Server Error"
        let bytes = Array(body.utf8)
        let response =
            "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
        var all = Array(response.utf8)
        all.append(contentsOf: bytes)
        var offset = 0
        while offset < all.count {
            let n = all.withUnsafeBytes {
                send(client, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { break }
            offset += n
        }
        close(client)
    }

    func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard hay.count >= needle.count else { return false }
        for i in 0...(hay.count - needle.count) where hay[i..<i + needle.count].elementsEqual(needle) { return true }
        return false
    }
}

final class ConnectionBox {
    let service: DemoService
    let fd: Int32
    init(_ service: DemoService, _ fd: Int32) {
        self.service = service
        self.fd = fd
    }
}

func usage() -> Never {
    print("usage: rollbackd-demo-service --port N --release-dir DIR")
    exit(2)
}

var port: UInt16?
var releaseDir: String?
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--port": port = args.next().flatMap { UInt16($0) }
    case "--release-dir": releaseDir = args.next()
    default: usage()
    }
}
guard let port, let releaseDir else { usage() }

signal(SIGPIPE, SIG_IGN)
let service = DemoService(releaseDir: releaseDir)
let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
var yes: Int32 = 1
setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
var addr = sockaddr_in()
addr.sin_family = sa_family_t(AF_INET)
addr.sin_port = port.bigEndian
addr.sin_addr.s_addr = inet_addr("127.0.0.1")
let bound = withUnsafePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
    }
}
guard bound == 0, listen(listener, 512) == 0 else {
    print("rollbackd-demo-service: cannot listen on 127.0.0.1:\(port): \(String(cString: strerror(errno)))")
    exit(1)
}
print("rollbackd-demo-service listening on 127.0.0.1:\(port), release dir \(releaseDir)")
/// Thread entry for one connection (a plain function: no actor isolation on a raw pthread).
nonisolated func connectionThread(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let raw else { return nil }
    let conn = Unmanaged<ConnectionBox>.fromOpaque(raw).takeRetainedValue()
    conn.service.serve(client: conn.fd)
    return nil
}

nonisolated func acceptForever(_ listener: Int32, _ service: DemoService) -> Never {
    while true {
        let client = accept(listener, nil, nil)
        if client < 0 { continue }
        let box = Unmanaged.passRetained(ConnectionBox(service, client))
        var thread = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        let rc = pthread_create(&thread, &attr, connectionThread, box.toOpaque())
        pthread_attr_destroy(&attr)
        if rc != 0 {
            let conn = box.takeRetainedValue()
            conn.service.serve(client: conn.fd)
        }
    }
}

acceptForever(listener, service)
