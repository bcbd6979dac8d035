import RollbackCore
import Synchronization

/// A running watch (`EtcdClient.watch`). `cancel()` ends it promptly: the stream is closed and no reconnect
/// follows; `cancelAndWait()` also waits until the watch's task (and any callback in progress) has finished.
public final class EtcdWatch: Sendable {
    private let task: Mutex<Task<Void, Never>?>
    /// The revision of the last event delivered (0 before any).
    private let last: Mutex<Int64>

    init() {
        task = Mutex(nil)
        last = Mutex(0)
    }

    func start(_ body: @escaping @Sendable (EtcdWatch) async -> Void) {
        let t = Task { await body(self) }
        task.withLock { $0 = t }
    }

    func delivered(_ revision: Int64) { last.withLock { $0 = max($0, revision) } }

    /// The revision of the last event delivered (0 before any).
    public var lastRevision: Int64 { last.withLock { $0 } }

    /// Stops the watch and waits until its stream is closed.
    public func cancelAndWait() async {
        let t = task.withLock { $0 }
        t?.cancel()
        await t?.value
    }

    /// Stops the watch without waiting.
    public func cancel() {
        task.withLock { $0 }?.cancel()
    }
}

extension EtcdClient {
    /// Watches every key under `prefix` from `fromRevision` (use the revision of a read + 1), calling `onEvent`
    /// with each batch of changes, in revision order, and the header revision of the reply carrying them.
    ///
    /// The stream lives on whichever endpoint answers; when it breaks (the member dies, the connection drops, the
    /// member fails its health check, or `streamLifetime` passes without an end) the watch reconnects with backoff
    /// (to the next endpoint) and resumes from the last delivered revision + 1: no event is lost or delivered
    /// twice. Each break is reported to `onError` (the watch goes on). When etcd has compacted the revision asked
    /// for, `onError` gets `.compacted` and the watch ends: read the keys again and start a new watch.
    ///
    /// - Parameter healthCheck: how often the stream's member is asked `GET /health` (within `attemptTimeout`)
    ///   while the stream is open. A member that hangs, or has lost its leader, keeps the connection open but
    ///   sends nothing: the failed check ends the stream so the watch moves to another member. nil: never.
    public func watch(
        prefix: String, fromRevision: Int64, streamLifetime: Interval = .minutes(5),
        healthCheck: Interval? = .seconds(5),
        onError: @escaping @Sendable (EtcdError) -> Void = { _ in },
        onEvent: @escaping @Sendable ([EtcdEvent], Int64) -> Void
    ) -> EtcdWatch {
        let watch = EtcdWatch()
        watch.start { [self] watch in
            guard !endpoints.isEmpty else {
                onError(EtcdError(endpoint: "(no endpoint)", path: "/v3/watch", kind: .streamBroken("no endpoint")))
                return
            }
            var next = max(1, fromRevision)
            var backoff: Int64 = 50
            while !Task.isCancelled {
                let index = currentIndex()
                let outcome = await stream(
                    endpoint: endpoints[index], prefix: prefix, from: next, lifetime: streamLifetime,
                    healthCheck: healthCheck
                ) { events, header in
                    guard let top = events.map(\.kv.modRevision).max() else { return }
                    next = top + 1
                    watch.delivered(top)
                    backoff = 50
                    onEvent(events, header)
                }
                if Task.isCancelled { return }
                if let error = outcome {
                    onError(error)
                    if case .compacted = error.kind { return }
                }
                failedOver(from: index)
                if !(await Self.pause(backoff)) { return }
                backoff = min(backoff * 2, 1000)
            }
        }
        return watch
    }

    /// One watch stream on one endpoint, until it ends, breaks or is cancelled. Returns why it ended (nil when the
    /// task was cancelled or the stream simply ran its lifetime).
    private func stream(
        endpoint base: String, prefix: String, from revision: Int64, lifetime: Interval, healthCheck: Interval?,
        deliver: ([EtcdEvent], Int64) -> Void
    ) async -> EtcdError? {
        var create = EtcdJSON.keyRange(prefix, prefix: true)
        create.append(("start_revision", EtcdJSON.int64(revision)))
        let body = JSONValue.object([("create_request", .object(create))])
        let (chunks, sink) = AsyncStream<[UInt8]>.makeStream()
        var request = HTTPRequest(
            method: "POST", url: base + "/v3/watch", headers: [("Content-Type", "application/json")],
            body: Array(body.serialized.utf8), options: options(timeout: lifetime)
        ).withoutHeaders()
        request.onBodyChunk = { sink.yield($0) }
        let http = self.http
        let transfer = Task {
            let r = await http.send(request)
            sink.finish()
            return r
        }
        // The member's health, checked while the stream is open; a failed check ends the transfer.
        let monitor = Task { () -> String? in
            guard let every = healthCheck else { return nil }
            while await Self.pause(every.milliseconds) {
                if let problem = await unhealthy(base) {
                    transfer.cancel()
                    return problem
                }
            }
            return nil
        }
        var failure = await withTaskCancellationHandler {
            await read(chunks, endpoint: base, deliver: deliver)
        } onCancel: {
            transfer.cancel()
        }
        if failure != nil { transfer.cancel() }
        let outcome = await transfer.value
        monitor.cancel()
        let sick = await monitor.value
        if Task.isCancelled { return nil }
        let fail: (EtcdError.Kind) -> EtcdError = { EtcdError(endpoint: base, path: "/v3/watch", kind: $0) }
        if failure == nil, let sick { return fail(.streamBroken("the member failed its health check: \(sick)")) }
        switch outcome {
        case let .success(response) where response.status != 200:
            // The gateway's error object came through the stream; give it the status it came with.
            if case let .status(_, code, message)? = failure?.kind {
                failure = fail(.status(response.status, code: code, message: message))
            }
            return failure ?? fail(.status(response.status, code: nil, message: "the watch stream was refused"))
        case .success:
            return failure ?? fail(.streamBroken("the stream ended"))
        case let .failure(error):
            if let failure { return failure }
            if case .timeout = error.kind { return nil } // the stream's lifetime: reconnect quietly
            return fail(.streamBroken(error.description))
        }
    }

    /// Reads the stream's objects until it ends or one says the watch cannot go on (returned).
    private func read(
        _ chunks: AsyncStream<[UInt8]>, endpoint base: String, deliver: ([EtcdEvent], Int64) -> Void
    ) async -> EtcdError? {
        let fail: (EtcdError.Kind) -> EtcdError = { EtcdError(endpoint: base, path: "/v3/watch", kind: $0) }
        var splitter = JSONObjectSplitter()
        for await chunk in chunks {
            for object in splitter.feed(chunk) {
                guard let value = try? JSONParser.parse(bytes: object) else {
                    return fail(.malformed("a streamed object is not JSON"))
                }
                guard let result = value["result"] else { return fail(Self.refusal(value, status: 200)) }
                let r = EtcdReply(result, path: "result")
                do throws(EtcdParseError) {
                    if try r.bool("canceled") {
                        let compact = try r.int64("compact_revision")
                        if compact > 0 { return fail(.compacted(compactRevision: compact)) }
                        return fail(.malformed("the watch was cancelled: \(try r.string("cancel_reason"))"))
                    }
                    var events: [EtcdEvent] = []
                    for e in try r.array("events") {
                        // A PUT event's type is the default (0) and so left out.
                        let kind: EtcdEvent.Kind = try e.string("type") == "DELETE" ? .delete : .put
                        guard let kv = e.field("kv") else { throw EtcdParseError(e.path + ".kv is missing") }
                        events.append(EtcdEvent(kind: kind, kv: try kv.keyValue()))
                    }
                    if !events.isEmpty { deliver(events, try r.revision()) }
                } catch {
                    return fail(.malformed(error.detail))
                }
            }
        }
        return nil
    }

    /// Why the member at `base` is not healthy (`GET /health` not answered within `attemptTimeout`, or not
    /// `"health": "true"`), or nil when it is.
    func unhealthy(_ base: String) async -> String? {
        switch await http.send(HTTPRequest.get(base + "/health", options: options(timeout: attemptTimeout))) {
        case let .failure(error): return error.description
        case let .success(r):
            let body = r.text.filter { $0 != " " && $0 != "\n" }
            return r.status == 200 && body.contains("\"health\":\"true\"")
                ? nil : "HTTP \(r.status): \(r.text.prefix(200))"
        }
    }
}
