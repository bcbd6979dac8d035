import RollbackCore
import Synchronization

/// The real `Notifier`: every event becomes a journald entry, and, for each configured webhook whose minimum
/// severity and event list accept it, a signed notification written durably to the spool before its first
/// delivery attempt; `notify` returns when both are done (or after `enqueueWait`, 1 s, at most); delivery happens in the background (`WebhookWorker`), so a slow, hanging or absent receiver
/// never delays the caller (a rollback in the same tick). Call `start()` once: it resumes what a previous run
/// left in the spool.
public final class EventNotifier: Notifier {
    public let config: NotifyConfig
    public let service: String
    public let host: String
    public let spool: WebhookSpool
    public let journal: EventJournal
    private let workers: [String: WebhookWorker]
    private let webhooks: [WebhookConfig]
    private let tracker = Mutex(IncidentTracker())
    private let writes: AsyncStream<SpoolWrite>.Continuation
    private let writer: Task<Void, Never>
    private let inFlight = Counter()
    private let enqueueWait: Interval

    /// - Parameters:
    ///   - spoolDirectory: where undelivered notifications wait, e.g. `$STATE_DIRECTORY/spool/webhooks`.
    ///   - policy: backoff and batch settings; its `maxAge` is replaced by `config.maxAge`.
    public init(
        config: NotifyConfig, service: String, spoolDirectory: String, policy: DeliveryPolicy = DeliveryPolicy(),
        journalWriter: JournalWriter = JournalWriter(), client: HTTPClient = HTTPClient(),
        host: String = WebhookPayload.hostName()
    ) {
        self.config = config
        self.service = service
        self.host = host
        self.spool = WebhookSpool(directory: spoolDirectory)
        self.journal = EventJournal(identifier: config.identifier, service: service, writer: journalWriter)
        self.webhooks = config.webhooks
        var p = policy
        p.maxAge = config.maxAge
        var workers: [String: WebhookWorker] = [:]
        for w in config.webhooks {
            workers[w.name] = WebhookWorker(webhook: w, spool: spool, policy: p, client: client, journal: journal)
        }
        self.workers = workers
        self.enqueueWait = policy.enqueueWait
        let inFlight = self.inFlight
        let (stream, continuation) = AsyncStream<SpoolWrite>.makeStream()
        self.writes = continuation
        self.writer = Task { [spool, journal, workers] in
            await EventNotifier.writeLoop(stream, spool: spool, workers: workers, journal: journal, inFlight: inFlight)
        }
    }

    deinit {
        writes.finish()
        let workers = self.workers
        if !workers.isEmpty { Task { for w in workers.values { await w.stop() } } }
    }

    /// The spool directory under a state directory.
    public static func spoolDirectory(stateDirectory: String) -> String { stateDirectory + "/spool/webhooks" }

    /// Loads what the spool holds (from before a restart) and starts delivery. Spooled notifications of a webhook
    /// that is no longer configured stay on disk and are reported in the journal.
    public func start() async {
        let spool = self.spool
        let names = webhooks.map(\.name)
        let loaded = await BlockingThread.run { () -> [(String, [SpoolMessage], [WebhookSpool.Damaged])] in
            names.map { name in
                let r = spool.load(webhook: name)
                return (name, r.messages, r.damaged)
            }
        }
        for (name, messages, damaged) in loaded {
            for d in damaged {
                journal.writer.send([
                    ("MESSAGE", "webhook \(name): spool file \(d.path) set aside as .corrupt: \(d.reason)"),
                    ("PRIORITY", "3"), ("SYSLOG_IDENTIFIER", config.identifier),
                    ("ROLLBACKD_WEBHOOK", name),
                ])
            }
            if !messages.isEmpty {
                journal.writer.send([
                    (
                        "MESSAGE",
                        "webhook \(name): resuming \(messages.count) undelivered notification(s) from the spool"
                    ),
                    ("PRIORITY", "5"), ("SYSLOG_IDENTIFIER", config.identifier),
                    ("ROLLBACKD_WEBHOOK", name), ("ROLLBACKD_PENDING", String(messages.count)),
                ])
                await workers[name]?.enqueue(messages)
            }
        }
        let orphaned = await BlockingThread.run {
            spool.spooledWebhooks().filter { !names.contains($0) }.map { ($0, spool.count(webhook: $0)) }
        }
        for (name, count) in orphaned where count > 0 {
            journal.writer.send([
                (
                    "MESSAGE",
                    "spool holds \(count) notification(s) for webhook \(name), which is no longer configured; they are kept in \(spool.path(webhook: name))"
                ),
                ("PRIORITY", "4"), ("SYSLOG_IDENTIFIER", config.identifier), ("ROLLBACKD_WEBHOOK", name),
            ])
        }
        for w in workers.values { await w.start() }
    }

    /// Hands the event to the writer, which journals it and writes one signed notification per accepting
    /// webhook durably (fsync) to the spool, and only then queues those for delivery — one event at a time, in
    /// the order `notify` was called, on its own thread. Returns once that is done, or after `policy.enqueueWait`
    /// at most: a stalled disk or a busy journald must not delay a rollback (the write then completes in the
    /// background). Never waits for a receiver.
    public func notify(_ event: Event) async {
        let summary = tracker.withLock { $0.apply(event) }
        let now = SystemTime.now()
        var messages: [SpoolMessage] = []
        for w in webhooks where WebhookPayload.accepts(w, event, service: service) {
            let body = WebhookPayload.body(w.format, event, incident: summary, host: host, service: service)
            messages.append(
                WebhookSpool.newMessage(
                    webhook: w.name, type: WebhookPayload.type(for: event.kind),
                    severity: event.severity, createdAt: now, body: body,
                    incident: event.incident))
        }
        let write = SpoolWrite(event: config.journal ? event : nil, messages: messages, done: OneShot())
        if write.event == nil && messages.isEmpty { return }
        inFlight.add(1)
        switch writes.yield(write) {
        case .enqueued:
            await write.done.wait(timeout: enqueueWait)
        default:
            // Stopped: still journal, and keep the notifications on disk for the next start.
            inFlight.add(-1)
            let (spool, journal) = (self.spool, self.journal)
            if let error = await BlockingThread.run({ Self.perform(write, spool: spool, journal: journal) }) {
                Self.reportSpoolFailure(error, journal: journal)
            }
        }
    }

    /// Journals and spools one write (blocking).
    private static func perform(_ w: SpoolWrite, spool: WebhookSpool, journal: EventJournal) -> SystemError? {
        if let e = w.event { journal.record(e) }
        if w.messages.isEmpty { return nil }
        do throws(SystemError) { try spool.write(w.messages); return nil } catch { return error }
    }

    /// The writer loop: each write is journaled and durable before its webhooks' workers see it.
    private static func writeLoop(
        _ stream: AsyncStream<SpoolWrite>, spool: WebhookSpool,
        workers: [String: WebhookWorker], journal: EventJournal,
        inFlight: Counter
    ) async {
        for await w in stream {
            if let error = await BlockingThread.run({ perform(w, spool: spool, journal: journal) }) {
                reportSpoolFailure(error, journal: journal)
            }
            for name in Set(w.messages.map(\.webhook)) {
                await workers[name]?.enqueue(w.messages.filter { $0.webhook == name })
            }
            inFlight.add(-1)
            w.done.signal()
        }
    }

    private static func reportSpoolFailure(_ error: SystemError, journal: EventJournal) {
        // Still delivered from memory: late is better than never, and the journal says the spool failed.
        journal.writer.send([
            (
                "MESSAGE",
                "cannot spool webhook notifications: \(error); delivering from memory only (lost if rollbackd stops first)"
            ),
            ("PRIORITY", "3"), ("SYSLOG_IDENTIFIER", journal.identifier),
        ])
    }

    /// Waits until every notification accepted so far is on disk and queued for delivery.
    public func flush() async {
        while inFlight.value > 0 { try? await Task.sleep(for: .milliseconds(2)) }
    }

    /// Hands over the engine's own view of an incident; later payloads summarise it from there.
    public func incidentUpdated(_ incident: Incident) {
        tracker.withLock { $0.update(incident) }
    }

    /// Notifications not yet delivered (nor dropped), over all webhooks.
    public func pending() async -> Int {
        var n = inFlight.value
        for w in workers.values { n += await w.pending }
        return n
    }

    public func stats() async -> [String: DeliveryStats] {
        var out: [String: DeliveryStats] = [:]
        for (name, w) in workers { out[name] = await w.currentStats }
        return out
    }

    /// Waits until nothing is pending or `timeout` passed; true when everything was delivered or dropped.
    public func drain(timeout: Interval) async -> Bool {
        let deadline = SystemTime.monotonicMs() + timeout.milliseconds
        while await pending() > 0 {
            if SystemTime.monotonicMs() >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    /// Finishes writing what was accepted, then stops delivery (in-flight requests are cancelled; their
    /// notifications stay spooled for the next start). Later `notify` calls still journal and spool.
    public func stop() async {
        writes.finish()
        await writer.value
        for w in workers.values { await w.stop() }
    }
}

/// A shared counter.
final class Counter: Sendable {
    private let atomic = Atomic<Int>(0)
    func add(_ n: Int) { atomic.add(n, ordering: .relaxed) }
    var value: Int { atomic.load(ordering: .relaxed) }
}

private struct SpoolWrite: Sendable {
    var event: Event?
    var messages: [SpoolMessage]
    var done: OneShot
}

/// A signal awaited with a time limit.
final class OneShot: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.signalled = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    /// Returns when signalled or after `timeout`, whichever comes first.
    func wait(timeout: Interval) async {
        let timer = Task { [self] in
            try? await Task.sleep(for: .milliseconds(timeout.milliseconds))
            signal()
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { s -> Bool in
                if s.signalled { return true }
                s.waiter = c
                return false
            }
            if resumeNow { c.resume() }
        }
        timer.cancel()
    }
}
