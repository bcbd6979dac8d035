#if canImport(Glibc)
import Glibc
#endif
import CCurl
import CCurlShim
import RollbackCore
import Synchronization

/// libcurl's process-wide initialisation, done once before the first handle is made.
enum CurlGlobal {
    private static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
    }()

    static func ensure() -> Bool { initialized }
}

/// Easy handles kept for the next transfer: making and freeing one per request (two per target per tick) was a
/// large share of the daemon's CPU at a 250 ms interval (Benchmarks/overhead). A returned handle is reset to
/// libcurl's defaults before reuse (`curl_easy_reset`: options go, nothing of the previous transfer stays but
/// libcurl's caches); connections live in the multi handle either way.
enum CurlEasyPool {
    /// An idle easy handle: owned by the pool while in it, by one transfer while out.
    private struct Handle: @unchecked Sendable { let pointer: UnsafeMutableRawPointer }
    private static let idle = Mutex<[Handle]>([])
    /// Enough for a tick of 1,000 targets without growing the pool without bound.
    private static let keep = 1024

    static func take() -> UnsafeMutableRawPointer? {
        if let h = idle.withLock({ $0.popLast() }) {
            curl_easy_reset(h.pointer)
            return h.pointer
        }
        return curl_easy_init()
    }

    /// The handle must not be in a multi handle any more.
    static func give(_ h: UnsafeMutableRawPointer) {
        let handle = Handle(pointer: h)
        let kept = idle.withLock { list -> Bool in
            guard list.count < keep else { return false }
            list.append(handle)
            return true
        }
        if !kept { curl_easy_cleanup(h) }
    }
}

/// One transfer: the easy handle and everything libcurl writes into while it runs.
///
/// Ownership: made by the caller, then handed to the client's driver thread, which alone touches it until it
/// completes (hence `@unchecked Sendable`). The header list is freed in `deinit`, the easy handle goes back to
/// `CurlEasyPool`.
final class CurlTransfer: @unchecked Sendable {
    let request: HTTPRequest
    let displayURL: String
    /// The batch this transfer belongs to (for cancellation).
    let tag: UInt64
    let completion: (Result<HTTPResponse, HTTPError>) -> Void
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    /// libcurl writes its detailed error message here (CURLOPT_ERRORBUFFER).
    private let errorBuffer: UnsafeMutablePointer<CChar>
    var body: [UInt8] = []
    var responseHeaders: [(name: String, value: String)] = []
    var bodyTooLarge = false
    let maxBody: Int

    init(request: HTTPRequest, tag: UInt64, completion: @escaping (Result<HTTPResponse, HTTPError>) -> Void) {
        self.request = request
        self.displayURL = HTTPError.redact(request.url)
        self.tag = tag
        self.completion = completion
        self.maxBody = request.options.maxBodyBytes
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        if let easy { CurlEasyPool.give(easy) }
        if let headerList { curl_slist_free_all(headerList) }
        errorBuffer.deinitialize(count: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.deallocate()
    }

    /// Creates and configures the easy handle. `bearerToken` is only put into the header list, never stored
    /// elsewhere or printed.
    func prepare(bearerToken: String?) -> HTTPError? {
        guard CurlGlobal.ensure() else {
            return HTTPError(url: request.url, kind: .other(code: 2, message: "curl_global_init failed"))
        }
        guard let h = CurlEasyPool.take() else {
            return HTTPError(url: request.url, kind: .other(code: 2, message: "curl_easy_init failed"))
        }
        easy = h
        let o = request.options
        var failed: CURLcode = CURLE_OK
        func check(_ rc: CURLcode) { if rc != CURLE_OK && failed == CURLE_OK { failed = rc } }

        check(rbd_easy_setopt_string(h, CURLOPT_URL, request.url))
        check(rbd_easy_setopt_pointer(h, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer)))
        check(rbd_easy_setopt_long(h, CURLOPT_NOSIGNAL, 1))
        check(rbd_easy_setopt_string(h, CURLOPT_PROTOCOLS_STR, "http,https"))
        check(rbd_easy_setopt_string(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"))
        check(rbd_easy_setopt_long(h, CURLOPT_TIMEOUT_MS, Int(clamping: o.timeout.milliseconds)))
        check(
            rbd_easy_setopt_long(
                h, CURLOPT_CONNECTTIMEOUT_MS,
                Int(clamping: min(o.connectTimeout, o.timeout).milliseconds)))
        check(rbd_easy_setopt_long(h, CURLOPT_FOLLOWLOCATION, o.followRedirects ? 1 : 0))
        check(rbd_easy_setopt_long(h, CURLOPT_MAXREDIRS, 5))
        check(rbd_easy_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1))
        check(rbd_easy_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2))
        if let ca = o.caFile { check(rbd_easy_setopt_string(h, CURLOPT_CAINFO, ca)) }
        if let cert = o.clientCertFile { check(rbd_easy_setopt_string(h, CURLOPT_SSLCERT, cert)) }
        if let key = o.clientKeyFile { check(rbd_easy_setopt_string(h, CURLOPT_SSLKEY, key)) }
        if request.onBodyChunk == nil {
            check(rbd_easy_setopt_off_t(h, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(o.maxBodyBytes)))
        }
        check(rbd_easy_setopt_string(h, CURLOPT_USERAGENT, HTTPClient.userAgent))
        check(rbd_easy_setopt_pointer(h, CURLOPT_PRIVATE, Unmanaged.passUnretained(self).toOpaque()))

        let me = Unmanaged.passUnretained(self).toOpaque()
        check(
            rbd_easy_setopt_write_callback(
                h,
                { ptr, size, count, userdata in
                    guard let ptr, let userdata else { return 0 }
                    let t = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
                    let n = size * count
                    if let stream = t.request.onBodyChunk {
                        ptr.withMemoryRebound(to: UInt8.self, capacity: n) { p in
                            stream(Array(UnsafeBufferPointer(start: p, count: n)))
                        }
                        return n
                    }
                    if t.body.count + n > t.maxBody {
                        t.bodyTooLarge = true
                        return 0 // makes libcurl stop with CURLE_WRITE_ERROR
                    }
                    ptr.withMemoryRebound(to: UInt8.self, capacity: n) { p in
                        t.body.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
                    }
                    return n
                }))
        check(rbd_easy_setopt_pointer(h, CURLOPT_WRITEDATA, me))
        if request.keepsHeaders {
            check(
                rbd_easy_setopt_header_callback(
                    h,
                    { ptr, size, count, userdata in
                        guard let ptr, let userdata else { return 0 }
                        let t = Unmanaged<CurlTransfer>.fromOpaque(userdata).takeUnretainedValue()
                        let n = size * count
                        let line = ptr.withMemoryRebound(to: UInt8.self, capacity: n) { p in
                            String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
                        }
                        if line.hasPrefix("HTTP/") {
                            // A new response (after a redirect or a 100 Continue): keep only the final one's headers.
                            t.responseHeaders.removeAll()
                        } else if let colon = line.firstIndex(of: ":") {
                            let name = String(line[..<colon])
                            let value = httpTrim(String(line[line.index(after: colon)...]))
                            if t.responseHeaders.count < 200 { t.responseHeaders.append((name, value)) }
                        }
                        return n
                    }))
            check(rbd_easy_setopt_pointer(h, CURLOPT_HEADERDATA, me))
        }

        switch request.method.uppercased() {
        case "GET": break
        case "HEAD": check(rbd_easy_setopt_long(h, CURLOPT_NOBODY, 1))
        case "POST":
            check(rbd_easy_setopt_long(h, CURLOPT_POST, 1))
        default:
            check(rbd_easy_setopt_string(h, CURLOPT_CUSTOMREQUEST, request.method))
        }
        if !request.body.isEmpty || request.method.uppercased() == "POST" {
            check(rbd_easy_setopt_off_t(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count)))
            if request.body.isEmpty {
                // An empty body still needs POSTFIELDS, or libcurl would read the body from stdin.
                check(rbd_easy_setopt_string(h, CURLOPT_COPYPOSTFIELDS, ""))
            } else {
                request.body.withUnsafeBytes { raw in
                    // COPYPOSTFIELDS copies the bytes, so the buffer need not outlive this call.
                    if let p = raw.baseAddress?.assumingMemoryBound(to: CChar.self) {
                        check(rbd_easy_setopt_string(h, CURLOPT_COPYPOSTFIELDS, p))
                    }
                }
            }
        }

        var list: UnsafeMutablePointer<curl_slist>? = nil
        func add(_ line: String) {
            if let l = curl_slist_append(list, line) { list = l }
        }
        // No "Expect: 100-continue" round trip for bodies: webhook receivers often do not answer it.
        add("Expect:")
        // A name or value with a line break could smuggle another header: such headers are dropped.
        let unsafe: (String) -> Bool = { $0.utf8.contains(0x0A) || $0.utf8.contains(0x0D) }
        for h in request.headers where !h.name.isEmpty && !h.name.contains(":") && !unsafe(h.name) && !unsafe(h.value) {
            add("\(h.name): \(h.value)")
        }
        if let bearerToken { add("Authorization: Bearer \(bearerToken)") }
        headerList = list
        check(rbd_easy_setopt_slist(h, CURLOPT_HTTPHEADER, list))

        if failed != CURLE_OK {
            return HTTPError(url: request.url, kind: .invalidURL(String(cString: curl_easy_strerror(failed))))
        }
        return nil
    }

    /// The outcome once libcurl reports the transfer done with `code`.
    func outcome(_ code: CURLcode) -> Result<HTTPResponse, HTTPError> {
        guard let h = easy else { return .failure(HTTPError(url: request.url, kind: .cancelled)) }
        var total: curl_off_t = 0, connect: curl_off_t = 0, firstByte: curl_off_t = 0
        _ = rbd_easy_getinfo_off_t(h, CURLINFO_TOTAL_TIME_T, &total)
        _ = rbd_easy_getinfo_off_t(h, CURLINFO_CONNECT_TIME_T, &connect)
        _ = rbd_easy_getinfo_off_t(h, CURLINFO_STARTTRANSFER_TIME_T, &firstByte)
        let timing = HTTPTiming(
            connect: Double(connect) / 1e6, firstByte: Double(firstByte) / 1e6,
            total: Double(total) / 1e6)
        if code == CURLE_OK {
            var status = 0
            _ = rbd_easy_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
            var retryAfter: curl_off_t = 0
            _ = rbd_easy_getinfo_off_t(h, CURLINFO_RETRY_AFTER, &retryAfter)
            return .success(
                HTTPResponse(
                    url: displayURL, status: status, headers: responseHeaders, body: body,
                    timing: timing, retryAfter: retryAfter > 0 ? .seconds(Int64(retryAfter)) : nil))
        }
        return .failure(HTTPError(url: request.url, kind: errorKind(code, connectSeconds: timing.connect)))
    }

    private func errorKind(_ code: CURLcode, connectSeconds: Double) -> HTTPError.Kind {
        let detail = errorBuffer.pointee != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(code))
        let o = request.options
        switch code {
        case CURLE_COULDNT_CONNECT:
            var osErrno = 0
            if let h = easy { _ = rbd_easy_getinfo_long(h, CURLINFO_OS_ERRNO, &osErrno) }
            if osErrno == Int(ECONNREFUSED) || detail.contains("refused") { return .connectionRefused }
            if osErrno != 0 { return .cannotConnect(String(cString: strerror(Int32(osErrno)))) }
            return .cannotConnect(detail)
        case CURLE_COULDNT_RESOLVE_HOST:
            return .cannotResolve(host: URLParts(request.url)?.host ?? detail)
        case CURLE_OPERATION_TIMEDOUT:
            if connectSeconds == 0 && detail.lowercased().contains("connect") {
                return .connectTimeout(min(o.connectTimeout, o.timeout))
            }
            return .timeout(o.timeout, bytesReceived: body.count)
        case CURLE_WRITE_ERROR where bodyTooLarge, CURLE_FILESIZE_EXCEEDED:
            return .bodyTooLarge(limit: maxBody)
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_CRL_BADFILE, CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            return .tls(detail)
        case CURLE_GOT_NOTHING: return .emptyReply
        case _ where detail.contains("Connection died"):
            // libcurl retried on fresh connections and the server closed each one before answering.
            return .emptyReply
        case CURLE_UNSUPPORTED_PROTOCOL where detail.contains("HTTP/0.9"):
            return .malformedResponse("not an HTTP response (no status line)")
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE: return .connectionBroken(detail)
        case CURLE_WEIRD_SERVER_REPLY, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_BAD_CONTENT_ENCODING:
            return .malformedResponse(detail)
        case CURLE_TOO_MANY_REDIRECTS: return .tooManyRedirects
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: return .invalidURL(detail)
        default: return .other(code: Int(code.rawValue), message: detail)
        }
    }
}

/// The libcurl multi handle, freed in `deinit`. Used by one thread at a time (the client's driver), except
/// `curl_multi_wakeup`, which libcurl allows from any thread.
final class CurlMulti: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer?

    init(maxConnections: Int) {
        handle = CurlGlobal.ensure() ? curl_multi_init() : nil
        if let handle {
            // Keep enough idle connections for every target of a tick, so the next tick reuses them.
            _ = rbd_multi_setopt_long(handle, CURLMOPT_MAXCONNECTS, maxConnections)
        }
    }

    deinit {
        if let handle { curl_multi_cleanup(handle) }
    }
}
