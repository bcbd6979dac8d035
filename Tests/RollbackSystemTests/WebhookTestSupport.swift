#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
@testable import RollbackCore
@testable import RollbackSystem
import TestSupport

/// A `whsec_` secret of 24 random bytes.
func newSecret() -> String {
    var rng = SystemRandomNumberGenerator()
    return "whsec_" + Data((0..<24).map { _ in UInt8.random(in: 0...255, using: &rng) }).base64EncodedString()
}

/// The repository's thresholds.json with its `notify` section replaced, written to `<dir>/thresholds.json`.
func writeThresholds(
    dir: String, webhooks: [JSONValue], maxAge: String = "24h",
    identifier: String = "rollbackd"
) throws -> String {
    let base = try JSONParser.parse(bytes: FileIO.readAll(path: RepoPaths.root + "/thresholds.json"))
    guard case var .object(members) = base else { throw TestFailure("thresholds.json is not an object") }
    let notify: JSONValue = .object([
        ("journal", .object([("enabled", .bool(true)), ("identifier", .string(identifier))])),
        ("maxAge", .string(maxAge)),
        ("webhooks", .array(webhooks)),
    ])
    members = members.map { $0.key == "notify" ? ("notify", notify) : $0 }
    let path = dir + "/thresholds.json"
    try FileIO.writeAtomically(path: path, bytes: Array(JSONValue.object(members).serialized.utf8))
    return path
}

func webhookJSON(
    name: String, url: String, secretFile: String, format: String = "standard",
    minSeverity: String = "low", events: [String] = [], timeout: String = "60s"
) -> JSONValue {
    .object([
        ("name", .string(name)), ("url", .string(url)), ("secretFile", .string(secretFile)),
        ("format", .string(format)), ("minSeverity", .string(minSeverity)),
        ("events", .array(events.map(JSONValue.string))), ("timeout", .string(timeout)),
    ])
}

/// A scratch directory holding a fresh signing secret in `<dir>/secret`, for a notifier and a receiver to share.
struct WebhookScene {
    let scratch: ScratchDir
    let secret: String
    var dir: String { scratch.path }

    init(_ label: String, trailingNewline: Bool = false) throws {
        scratch = try ScratchDir(label)
        secret = newSecret()
        try FileIO.writeAtomically(
            path: scratch.path + "/secret", bytes: Array((secret + (trailingNewline ? "\n" : "")).utf8))
    }

    /// A receiver that verifies with the scene's secret and logs to `<dir>/received.jsonl`.
    func receiver() async throws -> Receiver {
        try await Receiver.start(secret: secret, log: dir + "/received.jsonl")
    }

    func remove() { scratch.remove() }
}

/// A Tests/Servers/webhook_receiver.py process and what it logged.
struct Receiver {
    let server: ServerProcess
    let log: String
    var base: String { server.base }

    static func start(secret: String, log: String, port: Int = 0) async throws -> Receiver {
        let server = try await ServerProcess.python(
            "webhook_receiver.py", ["--port", String(port), "--secret", secret, "--log", log])
        return Receiver(server: server, log: log)
    }

    struct Request {
        var path: String
        var id: String
        var timestamp: Int64
        var verified: Bool
        var error: String?
        var type: String?
        var body: JSONValue
        var receivedAt: Double
        /// On the provider paths (`/pagerduty/KEY`, `/teams`): nil when the body has the documented shape,
        /// otherwise the first problem; "not checked" elsewhere.
        var shape: String?
        /// The request's `Authorization` header, when it had one.
        var authorization: String?
    }

    /// Everything received so far, in arrival order.
    static func requests(log: String) throws -> [Request] {
        guard FileIO.exists(log) else { return [] }
        let text = String(decoding: try FileIO.readAll(path: log), as: UTF8.self)
        return try text.split(separator: "\n").map { line in
            let j = try JSONParser.parse(String(line))
            func s(_ k: String) -> String? { if case let .string(v)? = j[k] { return v }; return nil }
            var t = 0.0
            if case let .number(v)? = j["t"] { t = v }
            return Request(
                path: s("path") ?? "", id: s("id") ?? "", timestamp: Int64(s("timestamp") ?? "") ?? 0,
                verified: j["verified"] == .bool(true), error: s("error"), type: s("type"),
                body: j["body"] ?? .null, receivedAt: t,
                shape: j["shape"].map { if case let .string(p) = $0 { p } else { nil } } ?? "not checked",
                authorization: s("authorization"))
        }
    }

    func requests() throws -> [Request] { try Self.requests(log: log) }

    /// Lets the requests a `/hold/N` URL holds go on (and every later one).
    func release() {
        let fd = open(log + ".release", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        if fd >= 0 { close(fd) }
    }

    /// Polls until `condition` holds for the requests received, or `timeout` passes.
    func waitFor(_ timeout: Interval, _ condition: ([Request]) -> Bool) async throws -> [Request] {
        let deadline = monotonicMs() + timeout.milliseconds
        while true {
            let r = try requests()
            if condition(r) || monotonicMs() > deadline { return r }
            try await Task.sleep(for: .milliseconds(25))
        }
    }
}

/// Short backoffs so fault tests stay fast.
func fastPolicy(batch: Int = 8) -> DeliveryPolicy {
    var p = DeliveryPolicy()
    p.initialBackoff = .ms(20)
    p.maxBackoff = .ms(200)
    p.batchSize = batch
    return p
}

func notifyConfig(_ webhooks: [WebhookConfig], identifier: String, maxAge: Interval = .hours(24)) -> NotifyConfig {
    var c = NotifyConfig()
    c.identifier = identifier
    c.webhooks = webhooks
    c.maxAge = maxAge
    return c
}

func webhook(
    _ name: String, url: String, secretFile: String, format: WebhookFormat = .standard,
    minSeverity: Severity = .low, events: [String] = [], timeout: Interval = .seconds(60)
) -> WebhookConfig {
    var http = HTTPOptions()
    http.timeout = timeout
    return WebhookConfig(
        name: name, url: url, secretFile: secretFile, format: format, minSeverity: minSeverity,
        events: events, http: http)
}

func drillEvent(_ i: Int, kind: EventKind = .decision, severity: Severity = .critical, incident: String = "inc-t")
    -> Event
{
    Event(
        kind: kind, at: SystemTime.now(), message: "test event \(i)", severity: severity, incident: incident,
        trigger: "critical_error_rate", automation: .full, fromVersion: "v2", toVersion: "v1", decision: "rollback",
        extra: ["drill_seq": String(i)])
}

/// The `drill_seq` extras of the requests' payloads.
func drillSeqs(_ requests: [Receiver.Request]) -> [Int] {
    requests.compactMap { r in
        guard case let .string(s)? = r.body["data"]?["event"]?["extra"]?["drill_seq"] else { return nil }
        return Int(s)
    }
}
