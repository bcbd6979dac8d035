#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import Synchronization

/// A client of etcd's v3 API through its JSON gateway (`/v3/…` over HTTP/1.1, on the project's libcurl client):
/// leases, reads, writes, transactions and watches. See docs/etcd-client.md.
///
/// Failover: every request goes to the current endpoint; a connection failure (nothing answers, the connection
/// breaks, a timeout) or a member that says it cannot serve now (gRPC `Unavailable`: no leader, leader changed)
/// moves it to the next endpoint, and once every endpoint has failed in a round it waits (50 ms doubling to 1 s)
/// before the next round, all within `requestTimeout`. An answer from etcd that refuses the request (a bad
/// argument, a lease not found) is final. When the deadline passes, the error names every endpoint with its last
/// failure.
public final class EtcdClient: Sendable {
    public let endpoints: [String]
    public let tls: EtcdTLS?
    /// The deadline of one call, retries and failover included.
    public let requestTimeout: Interval
    let http: HTTPClient
    /// The index of the endpoint requests go to now.
    private let current = Mutex(0)

    /// The timeout of one attempt on one endpoint. A member whose leader just died holds a write for etcd's own
    /// request timeout (7 s with the default election timeout) before it answers: a shorter attempt lets the
    /// request go to another member (or to this one again, once a new leader is elected) meanwhile.
    public let attemptTimeout: Interval

    /// - Parameters:
    ///   - endpoints: client URLs of the members (`http://host:2379`, or `https://…` with `tls`).
    ///   - requestTimeout: the deadline of one call, retries and failover included.
    ///   - attemptTimeout: the timeout of one attempt; default a third of `requestTimeout`, at least 1 s.
    public init(
        endpoints: [String], tls: EtcdTLS? = nil, requestTimeout: Interval = .seconds(2),
        attemptTimeout: Interval? = nil, http: HTTPClient = .shared
    ) {
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.tls = tls
        self.requestTimeout = requestTimeout
        self.attemptTimeout =
            attemptTimeout ?? Interval(milliseconds: max(1000, requestTimeout.milliseconds / 3))
        self.http = http
    }

    // MARK: Leases

    /// Grants a lease of `ttlSeconds`; returns its id and the TTL etcd granted.
    public func grantLease(ttlSeconds: Int) async throws(EtcdError) -> (id: Int64, ttl: Int) {
        try await call("/v3/lease/grant", .object([("TTL", EtcdJSON.int64(Int64(ttlSeconds)))])) {
            (r: EtcdReply) throws(EtcdParseError) in
            let error = try r.string("error")
            if !error.isEmpty { throw EtcdParseError("error: \(error)") }
            let id = try r.int64("ID")
            guard id != 0 else { throw EtcdParseError("ID is missing") }
            return (id, Int(try r.int64("TTL")))
        }
    }

    /// Renews the lease; returns its remaining TTL in seconds. Throws `leaseExpired` when the lease is gone.
    public func keepAlive(lease: Int64) async throws(EtcdError) -> Int {
        let ttl = try await call("/v3/lease/keepalive", .object([("ID", EtcdJSON.int64(lease))])) {
            (r: EtcdReply) throws(EtcdParseError) in
            // A streaming call: the reply is wrapped in {"result": …}.
            guard let result = r.field("result") else { throw EtcdParseError("result is missing") }
            return Int(try result.int64("TTL"))
        }
        if ttl <= 0 {
            throw EtcdError(endpoint: endpoint(), path: "/v3/lease/keepalive", kind: .leaseExpired(lease))
        }
        return ttl
    }

    /// Revokes the lease (its keys are deleted). A lease that is already gone counts as revoked.
    public func revoke(lease: Int64) async throws(EtcdError) {
        do {
            try await call("/v3/lease/revoke", .object([("ID", EtcdJSON.int64(lease))])) {
                (_: EtcdReply) throws(EtcdParseError) in ()
            }
        } catch {
            if case .status(_, code: 5?, _) = error.kind { return } // NotFound: expired already
            throw error
        }
    }

    // MARK: Keys

    /// The key, or nil when it does not exist.
    public func get(_ key: String) async throws(EtcdError) -> EtcdKeyValue? {
        try await call("/v3/kv/range", .object(EtcdJSON.keyRange(key, prefix: false))) {
            (r: EtcdReply) throws(EtcdParseError) in try r.keyValues().first
        }
    }

    /// Every key that starts with `prefix`, in key order, and the store's revision they were read at (watch from
    /// `revision + 1` to see every later change).
    public func getPrefix(_ prefix: String) async throws(EtcdError) -> (kvs: [EtcdKeyValue], revision: Int64) {
        try await call("/v3/kv/range", .object(EtcdJSON.keyRange(prefix, prefix: true))) {
            (r: EtcdReply) throws(EtcdParseError) in (try r.keyValues(), try r.revision())
        }
    }

    /// Writes the key (bound to `lease` if given: it is deleted when the lease ends); returns the new revision.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: Int64? = nil) async throws(EtcdError) -> Int64 {
        try await call("/v3/kv/put", EtcdJSON.put(key, value, lease: lease)) {
            (r: EtcdReply) throws(EtcdParseError) in try r.revision()
        }
    }

    @discardableResult
    public func put(_ key: String, _ text: String, lease: Int64? = nil) async throws(EtcdError) -> Int64 {
        try await put(key, Array(text.utf8), lease: lease)
    }

    /// Deletes the key (nothing happens when it does not exist).
    public func delete(_ key: String) async throws(EtcdError) {
        try await call("/v3/kv/deleterange", .object(EtcdJSON.keyRange(key, prefix: false))) {
            (_: EtcdReply) throws(EtcdParseError) in ()
        }
    }

    /// Runs `success` if every compare holds, else `failure`, atomically.
    public func txn(compare: [EtcdCompare], success: [EtcdOp], failure: [EtcdOp] = []) async throws(EtcdError)
        -> EtcdTxnResult
    {
        let body = JSONValue.object([
            ("compare", .array(compare.map(EtcdJSON.compare))), ("success", .array(success.map(EtcdJSON.op))),
            ("failure", .array(failure.map(EtcdJSON.op))),
        ])
        return try await call("/v3/kv/txn", body) { (r: EtcdReply) throws(EtcdParseError) in
            var ranges: [[EtcdKeyValue]] = []
            for response in try r.array("responses") {
                ranges.append(try response.field("response_range")?.keyValues() ?? [])
            }
            return EtcdTxnResult(succeeded: try r.bool("succeeded"), revision: try r.revision(), ranges: ranges)
        }
    }

    // MARK: Transport

    /// The endpoint requests go to now.
    func endpoint() -> String {
        endpoints.isEmpty ? "(no endpoint)" : endpoints[currentIndex()]
    }

    /// The index of the endpoint requests go to now (endpoints must not be empty).
    func currentIndex() -> Int { current.withLock { $0 } % endpoints.count }

    /// Moves to the endpoint after `failed` (unless another request already moved on).
    func failedOver(from failed: Int) {
        current.withLock { if $0 == failed { $0 = (failed + 1) % max(1, endpoints.count) } }
    }

    /// HTTP options for one attempt: the TLS files, and a timeout that leaves room to try another endpoint.
    func options(timeout: Interval) -> HTTPOptions {
        var o = HTTPOptions()
        o.timeout = timeout
        o.connectTimeout = Interval(milliseconds: min(timeout.milliseconds, 1000))
        o.caFile = tls?.caFile
        o.clientCertFile = tls?.certFile
        o.clientKeyFile = tls?.keyFile
        return o
    }

    /// Sleeps for the backoff unless the task is cancelled; false when cancelled.
    static func pause(_ ms: Int64) async -> Bool {
        do { try await Task.sleep(for: .milliseconds(ms)) } catch { return false }
        return true
    }

    /// POSTs `body` to `path` with failover and retries within `requestTimeout`, and reads the reply with `read`.
    func call<T>(_ path: String, _ body: JSONValue, _ read: (EtcdReply) throws(EtcdParseError) -> T)
        async throws(EtcdError) -> T
    {
        guard !endpoints.isEmpty else {
            throw EtcdError(endpoint: "(no endpoint)", path: path, kind: .unreachable([], deadline: requestTimeout))
        }
        let bytes = Array(body.serialized.utf8)
        let deadline = SystemTime.monotonicMs() + requestTimeout.milliseconds
        var failures: [String: String] = [:]
        var tlsFailed = Set<String>()
        var triedThisRound = 0
        var backoff: Int64 = 50
        while true {
            let index = current.withLock { $0 } % endpoints.count
            let base = endpoints[index]
            let left = deadline - SystemTime.monotonicMs()
            if left <= 0 || Task.isCancelled { break }
            let attempt = Interval(milliseconds: min(left, attemptTimeout.milliseconds))
            let request = HTTPRequest(
                method: "POST", url: base + path, headers: [("Content-Type", "application/json")], body: bytes,
                options: options(timeout: attempt)
            ).withoutHeaders()
            let retryReason: String
            var tlsReason = false
            switch await http.send(request) {
            case let .failure(error):
                retryReason = error.description
                tlsReason = Self.isTLS(error)
            case let .success(response):
                if response.status == 200 {
                    let value: JSONValue
                    do {
                        value = try JSONParser.parse(bytes: response.body)
                    } catch {
                        throw EtcdError(endpoint: base, path: path, kind: .malformed("not JSON: \(error)"))
                    }
                    do {
                        return try read(EtcdReply(value))
                    } catch {
                        throw EtcdError(endpoint: base, path: path, kind: .malformed(error.detail))
                    }
                }
                let refusal = Self.refusal(response)
                // Unavailable (14): this member cannot serve now (no leader, leader changed, stopping); another may.
                guard case let .status(_, code, message) = refusal, code == 14 || response.status == 503 else {
                    throw EtcdError(endpoint: base, path: path, kind: refusal)
                }
                retryReason = "HTTP \(response.status): \(message)"
            }
            // A TLS refusal says more than what the next attempt may see of the same refusal (a reset connection).
            if tlsReason || !tlsFailed.contains(base) { failures[base] = retryReason }
            if tlsReason { tlsFailed.insert(base) }
            failedOver(from: index)
            triedThisRound += 1
            if triedThisRound >= endpoints.count {
                triedThisRound = 0
                let wait = min(backoff, deadline - SystemTime.monotonicMs())
                if wait > 0, !(await Self.pause(wait)) { break }
                backoff = min(backoff * 2, 1000)
            }
        }
        let listed = endpoints.map { EtcdError.EndpointFailure(endpoint: $0, reason: failures[$0] ?? "not tried") }
        throw EtcdError(
            endpoint: endpoints.joined(separator: ","), path: path,
            kind: .unreachable(listed, deadline: requestTimeout))
    }

    /// A TLS handshake failure, or a connection the server closed with a TLS alert (a certificate it refused).
    static func isTLS(_ error: HTTPError) -> Bool {
        if case .tls = error.kind { return true }
        let text = error.description
        return text.contains("SSL") || text.contains("certificate")
    }

    /// The gateway's error reply `{"error": …, "code": N, "message": …}` (or grpc-gateway's streaming form
    /// `{"error": {"grpc_code": N, "message": …}}`) as an error kind.
    static func refusal(_ response: HTTPResponse) -> EtcdError.Kind {
        guard let value = try? JSONParser.parse(bytes: response.body) else {
            let text = response.text.prefix(200)
            return .status(response.status, code: nil, message: text.isEmpty ? "(no body)" : String(text))
        }
        return refusal(value, status: response.status)
    }

    static func refusal(_ value: JSONValue, status: Int) -> EtcdError.Kind {
        var error = value
        if case let .object(inner)? = value["error"] { error = .object(inner) }
        var code: Int?
        if case let .number(n)? = error["code"] ?? error["grpc_code"] { code = Int(n) }
        var message = ""
        if case let .string(s)? = error["message"] ?? error["error"] { message = s }
        return .status(status, code: code, message: message.isEmpty ? value.serialized : message)
    }
}
