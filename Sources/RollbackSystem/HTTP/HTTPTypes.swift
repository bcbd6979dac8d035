import RollbackCore

/// One HTTP request as rollbackd sends it. `options` carries the per-request timeouts, TLS trust store, bearer
/// token file, redirect policy and response size cap from `thresholds.json`.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    public var url: String
    /// Extra request headers, in order. Never printed: they may carry credentials.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var options: HTTPOptions
    /// Whether the response's headers are kept (`HTTPResponse.headers`). The sampler reads only status and body:
    /// turning them off spares two hundred header parses a tick at 100 targets.
    public var keepsHeaders = true
    /// A streaming response: each chunk of the body is handed here as it arrives (on the client's driver thread,
    /// so the callback must only hand it on) instead of being collected, and `maxBodyBytes` does not apply; the
    /// final `HTTPResponse` then has an empty body. The etcd watch (a response that never ends) reads this way.
    public var onBodyChunk: (@Sendable ([UInt8]) -> Void)?

    public init(
        method: String = "GET", url: String, headers: [(name: String, value: String)] = [],
        body: [UInt8] = [], options: HTTPOptions = HTTPOptions()
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.options = options
    }

    public static func get(_ url: String, options: HTTPOptions = HTTPOptions()) -> HTTPRequest {
        HTTPRequest(url: url, options: options)
    }

    /// The same request without keeping the response's headers.
    public func withoutHeaders() -> HTTPRequest {
        var r = self
        r.keepsHeaders = false
        return r
    }

    public static func == (a: HTTPRequest, b: HTTPRequest) -> Bool {
        a.method == b.method && a.url == b.url && a.body == b.body && a.options == b.options
            && a.keepsHeaders == b.keepsHeaders && (a.onBodyChunk == nil) == (b.onBodyChunk == nil)
            && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// Where the time of one transfer went, in seconds from its start (as libcurl measures it).
public struct HTTPTiming: Sendable, Equatable {
    /// TCP (and TLS) connection established; 0 when a kept-alive connection was reused.
    public var connect: Double
    /// First response byte received.
    public var firstByte: Double
    /// The whole transfer.
    public var total: Double

    public init(connect: Double = 0, firstByte: Double = 0, total: Double = 0) {
        self.connect = connect
        self.firstByte = firstByte
        self.total = total
    }
}

/// A complete HTTP response (any status: a 500 is a response, not an `HTTPError`).
public struct HTTPResponse: Sendable, Equatable {
    /// The URL that was requested (userinfo removed).
    public var url: String
    public var status: Int
    /// Response headers of the final response, in order, names as sent.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    public var timing: HTTPTiming

    /// `Retry-After` (RFC 9110 §10.2.3) as libcurl reads it (CURLINFO_RETRY_AFTER): delta-seconds, or an HTTP date
    /// turned into the seconds from now; nil when absent, unreadable, or zero.
    public var retryAfter: Interval?

    public init(
        url: String, status: Int, headers: [(name: String, value: String)], body: [UInt8], timing: HTTPTiming,
        retryAfter: Interval? = nil
    ) {
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body
        self.timing = timing
        self.retryAfter = retryAfter
    }

    public var isSuccess: Bool { (200..<300).contains(status) }

    /// The first header with this name (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// The body as text; invalid UTF-8 becomes U+FFFD.
    public var text: String { String(decoding: body, as: UTF8.self) }

    public static func == (a: HTTPResponse, b: HTTPResponse) -> Bool {
        a.url == b.url && a.status == b.status && a.body == b.body && a.timing == b.timing
            && a.retryAfter == b.retryAfter
            && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// A transfer that produced no HTTP response. The message names the URL and says what to look at.
public struct HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Nothing listens on the port (ECONNREFUSED).
        case connectionRefused
        /// Any other connect failure (no route, network unreachable, …).
        case cannotConnect(String)
        case cannotResolve(host: String)
        /// TCP/TLS connect did not finish within `connectTimeout`.
        case connectTimeout(Interval)
        /// The whole transfer did not finish within `timeout`.
        case timeout(Interval, bytesReceived: Int)
        /// The body exceeded `maxBodyBytes`.
        case bodyTooLarge(limit: Int)
        case tls(String)
        /// The server closed the connection without sending anything.
        case emptyReply
        /// The connection broke while sending or receiving.
        case connectionBroken(String)
        /// Not a valid HTTP response.
        case malformedResponse(String)
        case tooManyRedirects
        case invalidURL(String)
        /// The bearer token file could not be used (the token itself is never shown).
        case bearerToken(path: String, reason: String)
        case cancelled
        /// Anything else libcurl reports.
        case other(code: Int, message: String)
    }

    /// The request URL, userinfo removed.
    public var url: String
    public var kind: Kind

    public init(url: String, kind: Kind) {
        self.url = HTTPError.redact(url)
        self.kind = kind
    }

    public var description: String {
        switch kind {
        case .connectionRefused: return "connection refused to \(url)"
        case let .cannotConnect(detail): return "cannot connect to \(url): \(detail)"
        case let .cannotResolve(host): return "cannot resolve host \(host) for \(url)"
        case let .connectTimeout(t): return "connect timeout after \(t) to \(url)"
        case let .timeout(t, bytes):
            return "timeout after \(t) for \(url)" + (bytes > 0 ? " (\(bytes) bytes received)" : "")
        case let .bodyTooLarge(limit):
            return "response from \(url) exceeds \(HTTPError.formatBytes(limit)) (maxBodyBytes)"
        case let .tls(detail): return "TLS failure for \(url): \(detail)"
        case .emptyReply: return "empty reply from \(url) (the server closed the connection without a response)"
        case let .connectionBroken(detail): return "connection to \(url) broke: \(detail)"
        case let .malformedResponse(detail): return "invalid HTTP response from \(url): \(detail)"
        case .tooManyRedirects: return "too many redirects from \(url)"
        case let .invalidURL(detail): return "invalid URL \(url): \(detail)"
        case let .bearerToken(path, reason): return "cannot use bearer token file \(path) for \(url): \(reason)"
        case .cancelled: return "request to \(url) was cancelled"
        case let .other(code, message): return "request to \(url) failed: \(message) (curl error \(code))"
        }
    }

    /// Whether the other end answered at all. A refusal (the host said nothing listens), a TLS handshake, a reply
    /// however bad, or a stall after connecting is the service's doing and may count against it. A connect timeout,
    /// no route, an unresolvable name, or a request we could not even make is the watchdog's own view going dark: it
    /// says nothing about the release.
    public var reachedHost: Bool {
        switch kind {
        case .connectionRefused, .timeout, .bodyTooLarge, .tls, .emptyReply, .connectionBroken, .malformedResponse,
            .tooManyRedirects:
            return true
        case .cannotConnect, .cannotResolve, .connectTimeout, .invalidURL, .bearerToken, .cancelled, .other:
            return false
        }
    }

    /// Whether nothing came back in time: the host was never reached, or it was and then sent no byte of a body
    /// before the timeout. One such failure may be the service's (a hung instance); every request of a moment
    /// failing this way at once is what a stall of the watchdog's own host or network looks like (libcurl expires
    /// every transfer in flight on its first look after the stall), so a source that gets only silence reports
    /// itself blind.
    public var isSilence: Bool {
        if case let .timeout(_, bytes) = kind { return bytes == 0 }
        return !reachedHost
    }

    /// True for failures where trying again later may help (the caller decides whether to).
    public var isTransient: Bool {
        switch kind {
        case .invalidURL, .bearerToken, .bodyTooLarge, .tooManyRedirects, .cancelled: return false
        default: return true
        }
    }

    /// `16 MiB`, `512 KiB`, `1000 bytes`.
    public static func formatBytes(_ n: Int) -> String {
        if n >= 1 << 20 && n % (1 << 20) == 0 { return "\(n >> 20) MiB" }
        if n >= 1 << 10 && n % (1 << 10) == 0 { return "\(n >> 10) KiB" }
        return "\(n) bytes"
    }

    /// Removes `user:password@` from a URL so it can be printed.
    public static func redact(_ url: String) -> String {
        // On the UTF-8 bytes: every delimiter is ASCII, and this runs for every request.
        let u = Array(url.utf8)
        guard let schemeEnd = Self.find(Array("://".utf8), in: u) else { return url }
        let authorityStart = schemeEnd + 3
        var authorityEnd = authorityStart
        while authorityEnd < u.count, u[authorityEnd] != UInt8(ascii: "/"), u[authorityEnd] != UInt8(ascii: "?"),
            u[authorityEnd] != UInt8(ascii: "#")
        {
            authorityEnd += 1
        }
        guard let at = u[authorityStart..<authorityEnd].lastIndex(of: UInt8(ascii: "@")) else { return url }
        return String(decoding: u[..<authorityStart], as: UTF8.self) + "***@"
            + String(decoding: u[(at + 1)...], as: UTF8.self)
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8]) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        for i in 0...(bytes.count - needle.count) where bytes[i..<(i + needle.count)].elementsEqual(needle) { return i }
        return nil
    }
}

/// The text without leading and trailing ASCII whitespace (no Foundation needed; works on bytes, so a CR LF
/// pair, a single Character, is trimmed too).
func httpTrim(_ s: String) -> String {
    let u = s.utf8
    let ws: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
    guard let first = u.firstIndex(where: { !ws($0) }), let last = u.lastIndex(where: { !ws($0) }) else { return "" }
    return String(decoding: u[first...last], as: UTF8.self)
}
