#if canImport(Glibc)
import Glibc
#endif
import CCurl
import CCurlShim
import RollbackCore
import RollbackVersion
import Synchronization

/// An HTTP client on libcurl's multi interface: every request of a batch is in flight at once, driven by one
/// dedicated OS thread (never a thread of Swift's cooperative pool) that exists only while transfers run.
///
/// - Per request: connect and total timeouts, TLS verification always on (CA file configurable), an optional
///   bearer token read from a file at send time (never logged), a response size cap, redirects only when
///   configured, and the status and timing of the transfer.
/// - Every failure is an `HTTPError` whose message names the URL; a non-2xx status is a normal `HTTPResponse`.
/// - Idle keep-alive connections are cached (at most `maxConnections`) so the next tick reuses them.
public final class HTTPClient: Sendable {
    /// The `User-Agent` of every request: `rollbackd/VERSION`.
    public static let userAgent = RollbackVersion.agent

    /// A client for callers that need no separate connection cache.
    public static let shared = HTTPClient()

    private let engine: HTTPEngine

    /// - Parameter maxConnections: idle connections kept for reuse (libcurl `CURLMOPT_MAXCONNECTS`).
    public init(maxConnections: Int = 1024) {
        FileLimit.raiseOnce()
        engine = HTTPEngine(maxConnections: maxConnections)
    }

    /// Sends one request.
    public func send(_ request: HTTPRequest) async -> Result<HTTPResponse, HTTPError> {
        let results = await sendAll([request])
        return results.first ?? .failure(HTTPError(url: request.url, kind: .cancelled))
    }

    /// Sends every request at once and returns their outcomes in the same order. Wall time is that of the slowest
    /// request (bounded by its timeout), not the sum.
    public func sendAll(_ requests: [HTTPRequest]) async -> [Result<HTTPResponse, HTTPError>] {
        if requests.isEmpty { return [] }
        if Task.isCancelled { return requests.map { .failure(HTTPError(url: $0.url, kind: .cancelled)) } }
        // Read each distinct token file once per batch, so a rotated token is picked up on the next tick.
        var tokens: [String: TokenFile] = [:]
        for r in requests {
            if let path = r.options.bearerTokenFile, tokens[path] == nil { tokens[path] = Self.readToken(path) }
        }
        let tag = engine.nextTag()
        let engine = self.engine
        return await withTaskCancellationHandler {
            await withCheckedContinuation {
                (continuation: CheckedContinuation<[Result<HTTPResponse, HTTPError>], Never>) in
                let batch = HTTPBatch(count: requests.count, continuation: continuation)
                var ready: [CurlTransfer] = []
                for (i, request) in requests.enumerated() {
                    let transfer = CurlTransfer(request: request, tag: tag) { batch.complete(i, $0) }
                    var token: String?
                    if let path = request.options.bearerTokenFile {
                        switch tokens[path] {
                        case let .token(t)?: token = t
                        case let .unusable(reason)?:
                            batch.complete(
                                i, .failure(HTTPError(url: request.url, kind: .bearerToken(path: path, reason: reason)))
                            )
                            continue
                        case nil: break
                        }
                    }
                    if let error = transfer.prepare(bearerToken: token) {
                        batch.complete(i, .failure(error))
                        continue
                    }
                    ready.append(transfer)
                }
                if !ready.isEmpty { engine.submit(ready) }
            }
        } onCancel: {
            engine.cancel(tag)
        }
    }

    enum TokenFile {
        case token(String)
        case unusable(String)
    }

    static func readToken(_ path: String) -> TokenFile {
        do {
            let bytes = try FileIO.readAll(path: path, limit: 64 << 10)
            let token = httpTrim(String(decoding: bytes, as: UTF8.self))
            if token.isEmpty { return .unusable("the file is empty") }
            if token.contains(where: { $0 == "\n" || $0 == "\r" }) { return .unusable("the token spans several lines") }
            return .token(token)
        } catch {
            return .unusable(error.description)
        }
    }
}

/// Collects the outcomes of one `sendAll` and resumes its caller when the last one arrives.
private final class HTTPBatch: Sendable {
    private struct State {
        var results: [Result<HTTPResponse, HTTPError>?]
        var remaining: Int
        var continuation: CheckedContinuation<[Result<HTTPResponse, HTTPError>], Never>?
    }
    private let state: Mutex<State>

    init(count: Int, continuation: CheckedContinuation<[Result<HTTPResponse, HTTPError>], Never>) {
        state = Mutex(State(results: Array(repeating: nil, count: count), remaining: count, continuation: continuation))
    }

    func complete(_ index: Int, _ result: Result<HTTPResponse, HTTPError>) {
        let finished = state.withLock {
            s -> (CheckedContinuation<[Result<HTTPResponse, HTTPError>], Never>, [Result<HTTPResponse, HTTPError>])? in
            guard s.results[index] == nil else { return nil }
            s.results[index] = result
            s.remaining -= 1
            guard s.remaining == 0, let c = s.continuation else { return nil }
            s.continuation = nil
            let all = s.results.map { $0 ?? .failure(HTTPError(url: "", kind: .cancelled)) }
            return (c, all)
        }
        if let (c, all) = finished { c.resume(returning: all) }
    }
}

/// The multi handle and its driver thread. `pending` and `cancelled` are shared under the mutex; `active` belongs
/// to whichever driver thread runs (at most one at a time, handed over through the mutex).
private final class HTTPEngine: @unchecked Sendable {
    private struct Shared {
        var pending: [CurlTransfer] = []
        var cancelled: [UInt64] = []
        var running = false
        var tag: UInt64 = 0
    }
    private let shared = Mutex(Shared())
    private let multi: CurlMulti
    private var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]

    init(maxConnections: Int) {
        multi = CurlMulti(maxConnections: maxConnections)
    }

    func nextTag() -> UInt64 {
        shared.withLock { s in
            s.tag &+= 1
            return s.tag
        }
    }

    func submit(_ transfers: [CurlTransfer]) {
        let start = shared.withLock { s -> Bool in
            s.pending.append(contentsOf: transfers)
            if s.running { return false }
            s.running = true
            return true
        }
        if !start {
            if let m = multi.handle { _ = curl_multi_wakeup(m) }
            return
        }
        let started = BlockingThread.start { [self] in drive() }
        if !started {
            let orphans = shared.withLock { s -> [CurlTransfer] in
                s.running = false
                defer { s.pending = [] }
                return s.pending
            }
            for t in orphans {
                t.completion(
                    .failure(
                        HTTPError(
                            url: t.request.url, kind: .other(code: 2, message: "cannot start the HTTP driver thread"))))
            }
        }
    }

    func cancel(_ tag: UInt64) {
        shared.withLock { $0.cancelled.append(tag) }
        if let m = multi.handle { _ = curl_multi_wakeup(m) }
    }

    /// How long the driver thread waits for more work before it ends: longer than a tick at a 1 s interval, so
    /// a daemon at a short interval does not make a thread (and fault in its stack) for every batch.
    private static let lingerMs: Int64 = 2000

    /// The driver loop: add new transfers, run libcurl, hand out finished ones, wait for sockets. Returns (ending
    /// the thread) when nothing has been left to do for `lingerMs`.
    private func drive() {
        var idleSince: Int64?
        while true {
            let now = SystemTime.monotonicMs()
            let (incoming, cancels, stop) = shared.withLock { s -> ([CurlTransfer], [UInt64], Bool) in
                if s.pending.isEmpty && s.cancelled.isEmpty && active.isEmpty {
                    if now - (idleSince ?? now) >= Self.lingerMs {
                        s.running = false
                        return ([], [], true)
                    }
                    return ([], [], false)
                }
                defer { s.pending = []; s.cancelled = [] }
                return (s.pending, s.cancelled, false)
            }
            if stop { return }
            if incoming.isEmpty && cancels.isEmpty && active.isEmpty {
                // Idle: wait for `submit`'s wakeup (or the end of the linger).
                if idleSince == nil { idleSince = now }
                guard let m = multi.handle else {
                    idleSince = now - Self.lingerMs
                    continue
                }
                let left = Self.lingerMs - (now - (idleSince ?? now))
                _ = curl_multi_poll(m, nil, 0, Int32(clamping: max(1, left)), nil)
                continue
            }
            idleSince = nil
            guard let m = multi.handle else {
                for t in incoming {
                    t.completion(
                        .failure(
                            HTTPError(url: t.request.url, kind: .other(code: 2, message: "curl_multi_init failed"))))
                }
                continue
            }
            for t in incoming {
                guard let e = t.easy else { continue }
                let rc = curl_multi_add_handle(m, e)
                if rc != CURLM_OK {
                    let message = String(cString: curl_multi_strerror(rc))
                    t.completion(
                        .failure(HTTPError(url: t.request.url, kind: .other(code: Int(rc.rawValue), message: message))))
                    continue
                }
                active[e] = t
            }
            if !cancels.isEmpty {
                let tags = Set(cancels)
                for (e, t) in active where tags.contains(t.tag) {
                    curl_multi_remove_handle(m, e)
                    active[e] = nil
                    t.completion(.failure(HTTPError(url: t.request.url, kind: .cancelled)))
                }
            }
            var running: Int32 = 0
            _ = curl_multi_perform(m, &running)
            var queued: Int32 = 0
            while let msg = curl_multi_info_read(m, &queued) {
                guard msg.pointee.msg == CURLMSG_DONE, let e = msg.pointee.easy_handle else { continue }
                let code = msg.pointee.data.result
                curl_multi_remove_handle(m, e)
                if let t = active.removeValue(forKey: e) { t.completion(t.outcome(code)) }
            }
            if !active.isEmpty {
                _ = curl_multi_poll(m, nil, 0, 1000, nil)
            }
        }
    }
}

/// Raises the soft open-file limit to the hard limit once: a tick may hold one socket per target.
enum FileLimit {
    private static let raised: Bool = {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return false }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            return setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0
        }
        return true
    }()

    static func raiseOnce() { _ = raised }
}
