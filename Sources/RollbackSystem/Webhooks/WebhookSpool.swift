#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import Synchronization

/// One notification waiting for delivery to one webhook. Its body is final (signed at each attempt with the
/// attempt's timestamp); its id is the `webhook-id` on every attempt, so receivers can drop duplicates.
public struct SpoolMessage: Sendable, Equatable {
    public static let formatVersion = 1

    public var id: String
    public var webhook: String
    /// `rollbackd.<kind>`.
    public var type: String
    public var severity: Severity
    public var createdAt: Timestamp
    public var body: [UInt8]
    /// The incident of the event, for journald entries about this message.
    public var incident: String?
    /// The file name in the webhook's spool directory (ordering: creation time, then a sequence number).
    public var fileName: String

    public init(
        id: String, webhook: String, type: String, severity: Severity, createdAt: Timestamp, body: [UInt8],
        incident: String? = nil, fileName: String
    ) {
        self.id = id
        self.webhook = webhook
        self.type = type
        self.severity = severity
        self.createdAt = createdAt
        self.body = body
        self.incident = incident
        self.fileName = fileName
    }

    /// The spool file: a small versioned JSON document holding the exact body to send.
    public var fileContent: [UInt8] {
        let doc: JSONValue = .object([
            ("spool", .number(Double(Self.formatVersion))),
            ("id", .string(id)),
            ("webhook", .string(webhook)),
            ("type", .string(type)),
            ("severity", .string(severity.rawValue)),
            ("createdMs", .number(Double(createdAt.millisecondsSinceEpoch))),
            ("created", .string(createdAt.iso8601)),
            ("incident", incident.map(JSONValue.string) ?? .null),
            ("body", .string(String(decoding: body, as: UTF8.self))),
        ])
        return Array((doc.serialized + "\n").utf8)
    }

    /// Parses a spool file; nil when it is not one (the caller sets it aside).
    public static func parse(_ bytes: [UInt8], fileName: String) -> SpoolMessage? {
        guard let doc = try? JSONParser.parse(bytes: bytes),
            case let .number(v)? = doc["spool"], Int(v) == formatVersion,
            case let .string(id)? = doc["id"], !id.isEmpty,
            case let .string(webhook)? = doc["webhook"],
            case let .string(type)? = doc["type"],
            case let .string(sev)? = doc["severity"], let severity = Severity(rawValue: sev),
            case let .number(ms)? = doc["createdMs"],
            case let .string(body)? = doc["body"]
        else { return nil }
        var incident: String?
        if case let .string(i)? = doc["incident"] { incident = i }
        return SpoolMessage(
            id: id, webhook: webhook, type: type, severity: severity,
            createdAt: Timestamp(millisecondsSinceEpoch: Int64(ms)), body: Array(body.utf8),
            incident: incident, fileName: fileName)
    }
}

/// The durable queue of undelivered webhook notifications: one file per (notification, webhook) under
/// `<directory>/<webhook>/`, written with temp file + fsync + rename + directory fsync before the first delivery
/// attempt and removed once delivered (or dropped with a journald error). After a restart, `load` returns what
/// is left, oldest first.
public struct WebhookSpool: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    private static let sequence = Atomic<UInt64>(0)

    /// A directory name for a webhook name: safe characters kept, others as `%XX`.
    public static func directoryName(for webhook: String) -> String {
        var out = ""
        for b in webhook.utf8 {
            let c = Character(Unicode.Scalar(b))
            if c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_" || (c == "." && !out.isEmpty)) {
                out.append(c)
            } else {
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
            }
        }
        return out.isEmpty ? "%00" : out
    }

    public func path(webhook: String) -> String { directory + "/" + Self.directoryName(for: webhook) }
    public func path(of message: SpoolMessage) -> String { path(webhook: message.webhook) + "/" + message.fileName }

    /// A new message with a unique id and a file name that sorts after every earlier one of this process.
    public static func newMessage(
        webhook: String, type: String, severity: Severity, createdAt: Timestamp,
        body: [UInt8], incident: String? = nil
    ) -> SpoolMessage {
        let id = WebhookSigning.newMessageID()
        let seq = sequence.add(1, ordering: .relaxed).newValue
        func pad(_ v: some BinaryInteger, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        let name = "\(pad(max(0, createdAt.millisecondsSinceEpoch), 13))-\(pad(seq % 1_000_000_000, 9))-\(id).json"
        return SpoolMessage(
            id: id, webhook: webhook, type: type, severity: severity, createdAt: createdAt, body: body,
            incident: incident, fileName: name)
    }

    /// Writes each message durably (blocking: call from `BlockingThread`). Throws on the first failure, naming
    /// the file; messages written before it stay written.
    public func write(_ messages: [SpoolMessage]) throws(SystemError) {
        var made: Set<String> = []
        for m in messages {
            let dir = path(webhook: m.webhook)
            if !made.contains(dir) {
                try FileIO.makeDirectories(dir, mode: 0o700)
                made.insert(dir)
            }
            try FileIO.writeAtomically(path: dir + "/" + m.fileName, bytes: m.fileContent, mode: 0o600)
        }
    }

    /// Removes a delivered (or dropped) message. A removal lost in a crash only means one more delivery of the
    /// same `webhook-id`, which receivers de-duplicate.
    public func remove(_ message: SpoolMessage) {
        _ = unlink(path(of: message))
    }

    /// What `load` found that is not a message: set aside as `<name>.corrupt`.
    public struct Damaged: Sendable, Equatable {
        public var path: String
        public var reason: String
    }

    /// Every message still spooled for `webhook`, oldest first. Left-over temp files (a crash mid-write, before
    /// the message was accepted) are removed; unreadable files are renamed `*.corrupt` and reported.
    public func load(webhook: String) -> (messages: [SpoolMessage], damaged: [Damaged]) {
        let dir = path(webhook: webhook)
        var messages: [SpoolMessage] = []
        var damaged: [Damaged] = []
        for name in Self.list(dir).sorted() {
            let full = dir + "/" + name
            if name.contains(".json.tmp.") {
                _ = unlink(full)
                continue
            }
            guard name.hasSuffix(".json") else { continue }
            do {
                let bytes = try FileIO.readAll(path: full, limit: 16 << 20)
                if var m = SpoolMessage.parse(bytes, fileName: name) {
                    m.webhook = webhook
                    messages.append(m)
                } else {
                    _ = rename(full, full + ".corrupt")
                    damaged.append(
                        Damaged(
                            path: full, reason: "not a rollbackd spool file (version \(SpoolMessage.formatVersion))"))
                }
            } catch {
                _ = rename(full, full + ".corrupt")
                damaged.append(Damaged(path: full, reason: error.description))
            }
        }
        return (messages, damaged)
    }

    /// Webhook names that have a spool directory (decoded from the directory names).
    public func spooledWebhooks() -> [String] {
        Self.list(directory).compactMap { name -> String? in
            var bytes: [UInt8] = []
            var it = Array(name.utf8)[...]
            while let b = it.popFirst() {
                if b == UInt8(ascii: "%"), it.count >= 2,
                    let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16)
                {
                    bytes.append(v)
                    it = it.dropFirst(2)
                } else {
                    bytes.append(b)
                }
            }
            return String(decoding: bytes, as: UTF8.self)
        }.sorted()
    }

    /// Number of messages spooled for `webhook` (files only; cheap).
    public func count(webhook: String) -> Int {
        Self.list(path(webhook: webhook)).filter { $0.hasSuffix(".json") }.count
    }

    static func list(_ dir: String) -> [String] {
        guard let d = opendir(dir) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> String in
                let bytes = raw.prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        return names
    }
}
