#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// How hard and how long webhook delivery tries.
public struct DeliveryPolicy: Sendable, Equatable {
    /// Wait after the first failed attempt; doubles (×`multiplier`) with each further failure, up to `maxBackoff`.
    public var initialBackoff: Interval = .seconds(1)
    public var maxBackoff: Interval = .minutes(5)
    public var multiplier: Double = 2
    /// A `Retry-After` longer than this is shortened to it.
    public var maxRetryAfter: Interval = .hours(1)
    /// Notifications still undelivered after this long are dropped with a journald error (`notify.maxAge`).
    public var maxAge: Interval = .hours(24)
    /// Notifications sent at once to one webhook.
    public var batchSize: Int = 8
    /// `notify` returns once its event is journaled and its notifications are on disk (fsync), normally within
    /// milliseconds; if the disk or journald stalls, it stops waiting after this long and the write completes in
    /// the background (a crash in that window loses the notification).
    public var enqueueWait: Interval = .seconds(1)

    public init() {}

    public init(maxAge: Interval) { self.maxAge = maxAge }

    /// The wait after `failures` consecutive failed attempts (1 = the first), with "equal jitter": half the
    /// exponential delay for sure, the other half random (`random` in 0..<1), so many rollbackd instances that
    /// failed together do not retry together.
    public func backoff(failures: Int, random: Double) -> Interval {
        let exponent = Double(max(0, failures - 1))
        var ms = Double(initialBackoff.milliseconds)
        var n = 0.0
        while n < exponent && ms < Double(maxBackoff.milliseconds) {
            ms *= multiplier
            n += 1
        }
        ms = min(ms, Double(maxBackoff.milliseconds))
        let half = ms / 2
        return .ms(Int64(half + half * min(max(random, 0), 1)))
    }
}

/// What one attempt's outcome means for the notification.
public enum DeliveryOutcome: Sendable, Equatable {
    case delivered(status: Int)
    /// Try again later: connection errors, timeouts, 5xx, 408 and 429. `after` is the receiver's `Retry-After`
    /// (seconds or an HTTP date, read by libcurl).
    case retry(reason: String, after: Interval?)
    /// Not retried: other statuses (4xx, 3xx, 1xx); dropped with a journald error.
    case reject(status: Int, reason: String)

    public static func classify(_ result: Result<HTTPResponse, HTTPError>) -> DeliveryOutcome {
        switch result {
        case let .failure(error):
            return .retry(reason: error.description, after: nil)
        case let .success(r):
            if r.isSuccess { return .delivered(status: r.status) }
            let snippet = String(httpTrim(r.text).prefix(200))
            let reason = "HTTP \(r.status) from \(HTTPError.redact(r.url))" + (snippet.isEmpty ? "" : ": \(snippet)")
            if r.status == 408 || r.status == 429 || (500...599).contains(r.status) {
                return .retry(reason: reason, after: r.retryAfter)
            }
            return .reject(status: r.status, reason: reason)
        }
    }
}

/// Counters of one webhook's delivery, for tests, `rollbackd status` and benchmarks.
public struct DeliveryStats: Sendable, Equatable {
    public var queued = 0
    public var delivered = 0
    public var dropped = 0
    public var attempts = 0
    public var failedAttempts = 0
    /// Waiting for delivery now, and when the oldest of them was created.
    public var pending = 0
    public var oldestPendingAt: Timestamp?

    public init() {}
}

/// Delivers one webhook's spooled notifications in the background: batches of `batchSize` at once through the
/// shared libcurl client, each signed at its attempt; on a retryable failure the whole webhook backs off (the
/// receiver is likely down or throttling); `Retry-After` is honoured. Delivered and dropped messages leave the
/// spool. Nothing here is ever awaited by the engine's tick.
actor WebhookWorker {
    let webhook: WebhookConfig
    let spool: WebhookSpool
    let policy: DeliveryPolicy
    let client: HTTPClient
    let journal: EventJournal
    private var queue: [SpoolMessage] = []
    private var queuedIDs: Set<String> = []
    private var failures = 0
    private var notBeforeMs: Int64 = 0
    private var stats = DeliveryStats()
    private let wake: AsyncStream<Void>.Continuation
    private let signals: AsyncStream<Void>
    private var loop: Task<Void, Never>?

    init(webhook: WebhookConfig, spool: WebhookSpool, policy: DeliveryPolicy, client: HTTPClient, journal: EventJournal)
    {
        self.webhook = webhook
        self.spool = spool
        self.policy = policy
        self.client = client
        self.journal = journal
        (signals, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func enqueue(_ messages: [SpoolMessage]) {
        for m in messages where !queuedIDs.contains(m.id) {
            queue.append(m)
            queuedIDs.insert(m.id)
            stats.queued += 1
        }
        wake.yield(())
    }

    var pending: Int { queue.count }
    var currentStats: DeliveryStats {
        var s = stats
        s.pending = queue.count
        s.oldestPendingAt = queue.map(\.createdAt).min()
        return s
    }

    func start() {
        guard loop == nil else { return }
        let signals = self.signals
        loop = Task { [self] in await self.run(signals) }
    }

    func stop() async {
        loop?.cancel()
        wake.finish()
        await loop?.value
        loop = nil
    }

    private enum Step {
        case idle
        case wait(Int64)
        case worked
    }

    private nonisolated func run(_ signals: AsyncStream<Void>) async {
        var wakeups = signals.makeAsyncIterator()
        while !Task.isCancelled {
            switch await step() {
            case .idle:
                if await wakeups.next() == nil { return }
            case let .wait(ms):
                do { try await Task.sleep(for: .milliseconds(ms)) } catch { return }
            case .worked:
                continue
            }
        }
    }

    private func step() async -> Step {
        dropExpired()
        if queue.isEmpty { return .idle }
        let now = SystemTime.monotonicMs()
        if notBeforeMs > now { return .wait(notBeforeMs - now) }

        var secret: WebhookSecret?
        var routingKey: String?
        do {
            if let path = webhook.secretFile { secret = try WebhookSecret.load(path: path) }
            if let path = webhook.routingKeyFile { routingKey = try ProviderPayload.routingKey(path: path) }
        } catch {
            failed("\(error)", after: nil)
            return .worked
        }
        let batch = Array(queue.prefix(max(1, policy.batchSize)))
        let timestamp = SystemTime.now().millisecondsSinceEpoch / 1000
        let requests = batch.map { m in
            // PagerDuty's routing key is added here, from its file: it is never written to the spool.
            let body = routingKey.flatMap { ProviderPayload.withRoutingKey(m.body, key: $0) } ?? m.body
            var headers = [(name: "Content-Type", value: "application/json")]
            if let secret {
                headers = WebhookSigning.headers(id: m.id, timestamp: timestamp, body: body, secret: secret)
            }
            return HTTPRequest(method: "POST", url: webhook.url, headers: headers, body: body, options: webhook.http)
        }
        let results = await client.sendAll(requests)
        if Task.isCancelled { return .worked }
        stats.attempts += batch.count
        var retry: (reason: String, after: Interval?)?
        for (m, result) in zip(batch, results) {
            switch DeliveryOutcome.classify(result) {
            case .delivered:
                finish(m)
                stats.delivered += 1
            case let .reject(status, reason):
                drop(m, reason: "\(reason) (not retried)", status: status)
            case let .retry(reason, after):
                stats.failedAttempts += 1
                if retry == nil || (after ?? .zero) > (retry?.after ?? .zero) { retry = (reason, after) }
            }
        }
        if let retry {
            failed(retry.reason, after: retry.after)
        } else if failures > 0 {
            journal.writer.send(
                note(priority: 6, "webhook \(webhook.name): delivering again after \(failures) failed attempt(s)"))
            failures = 0
            notBeforeMs = 0
        }
        return .worked
    }

    /// One more consecutive failure: back off (or wait `Retry-After`) before the next attempt.
    private func failed(_ reason: String, after: Interval?) {
        failures += 1
        let backoff = policy.backoff(failures: failures, random: Double.random(in: 0..<1))
        var wait = backoff
        if let after { wait = min(after, policy.maxRetryAfter) }
        notBeforeMs = SystemTime.monotonicMs() + wait.milliseconds
        if failures == 1 || failures % 10 == 0 {
            journal.writer.send(
                note(
                    priority: 4,
                    "webhook \(webhook.name): delivery failed (attempt \(failures)), \(queue.count) pending, next try in \(wait): \(scrub(reason))"
                ))
        }
    }

    /// The webhook URL as it may appear in the journal: scheme and host only, since the path of many webhook
    /// URLs (Slack's among them) is itself a secret.
    static func displayURL(_ url: String) -> String {
        let clean = HTTPError.redact(url)
        guard let schemeEnd = clean.firstRange(of: "://") else { return "(webhook URL)" }
        let rest = clean[schemeEnd.upperBound...]
        guard let slash = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) else { return clean }
        return String(clean[..<slash]) + "/…"
    }

    /// A failure text with the webhook's full URL replaced by `displayURL`.
    private func scrub(_ text: String) -> String {
        text.replacing(HTTPError.redact(webhook.url), with: Self.displayURL(webhook.url))
            .replacing(webhook.url, with: Self.displayURL(webhook.url))
    }

    private func note(priority: Int, _ message: String) -> [(name: String, value: String)] {
        [
            ("MESSAGE", message), ("PRIORITY", String(priority)), ("SYSLOG_IDENTIFIER", journal.identifier),
            ("ROLLBACKD_WEBHOOK", webhook.name), ("ROLLBACKD_PENDING", String(queue.count)),
        ]
    }

    private func finish(_ m: SpoolMessage) {
        spool.remove(m)
        queuedIDs.remove(m.id)
        queue.removeAll { $0.id == m.id }
    }

    private func drop(_ m: SpoolMessage, reason: String, status: Int?) {
        finish(m)
        stats.dropped += 1
        let reason = scrub(reason)
        var extra = ["webhook": webhook.name, "webhook_id": m.id, "type": m.type, "url": Self.displayURL(webhook.url)]
        if let status { extra["status"] = String(status) }
        journal.record(
            Event(
                kind: .deliveryFailed, at: SystemTime.now(),
                message: "webhook \(webhook.name): dropped \(m.type) notification \(m.id): \(reason)",
                severity: .high, incident: m.incident, reason: reason, extra: extra))
    }

    private func dropExpired() {
        let now = SystemTime.now()
        let limit = now - policy.maxAge
        guard queue.contains(where: { $0.createdAt < limit }) else { return }
        for m in queue where m.createdAt < limit {
            drop(m, reason: "undelivered for \(now - m.createdAt), longer than maxAge \(policy.maxAge)", status: nil)
        }
    }
}
