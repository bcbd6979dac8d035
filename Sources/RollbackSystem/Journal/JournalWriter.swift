#if canImport(Glibc)
import Glibc
#endif
import CSystemd
import RollbackCore

/// Where journal entries go.
public enum JournalTarget: String, Sendable, CaseIterable {
    /// journald when its socket exists, otherwise stderr.
    case automatic = "auto"
    case journal
    case stderr
}

/// Writes structured entries to journald with `sd_journal_sendv`, or, without a journal socket (run from a
/// terminal), a readable line on stderr. A failed send falls back to stderr too, so no entry is lost silently.
/// Stateless and thread-safe: libsystemd keeps its own socket and `sd_journal_sendv` may be called from any thread.
public struct JournalWriter: Sendable {
    public static let defaultSocketPath = "/run/systemd/journal/socket"

    /// The target actually used: `.journal` or `.stderr` (never `.automatic`).
    public let target: JournalTarget

    public init(target: JournalTarget = .automatic, socketPath: String = JournalWriter.defaultSocketPath) {
        switch target {
        case .automatic: self.target = JournalWriter.socketExists(socketPath) ? .journal : .stderr
        case .journal, .stderr: self.target = target
        }
    }

    /// True when `path` is a Unix socket (journald's native socket).
    public static func socketExists(_ path: String) -> Bool {
        var st = stat()
        guard stat(path, &st) == 0 else { return false }
        return (st.st_mode & S_IFMT) == S_IFSOCK
    }

    /// Sends one entry. Field names must be uppercase `[A-Z0-9_]`; values may hold any bytes, newlines included.
    /// Returns the target the entry reached.
    @discardableResult
    public func send(_ fields: [(name: String, value: String)]) -> JournalTarget {
        if target == .journal {
            let rc = JournalWriter.sendv(fields)
            if rc >= 0 { return .journal }
            var fallback = fields
            fallback.append(("ROLLBACKD_JOURNAL_ERROR", "sd_journal_sendv: \(String(cString: strerror(-rc)))"))
            Terminal.writeError(JournalWriter.readableLine(fallback))
            return .stderr
        }
        Terminal.writeError(JournalWriter.readableLine(fields))
        return .stderr
    }

    /// Calls `sd_journal_sendv` with one iovec per `NAME=value`. Returns its result (negative errno on failure).
    static func sendv(_ fields: [(name: String, value: String)]) -> Int32 {
        var bytes: [UInt8] = []
        var ranges: [(offset: Int, count: Int)] = []
        for field in fields {
            let start = bytes.count
            bytes.append(contentsOf: field.name.utf8)
            bytes.append(UInt8(ascii: "="))
            bytes.append(contentsOf: field.value.utf8)
            ranges.append((start, bytes.count - start))
        }
        return bytes.withUnsafeMutableBytes { raw -> Int32 in
            guard let base = raw.baseAddress else { return -EINVAL }
            var iov = ranges.map { iovec(iov_base: base + $0.offset, iov_len: $0.count) }
            return iov.withUnsafeMutableBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }

    /// `2026-11-22T13:53:00.123Z rollbackd CRIT decision: Rolling back … [incident=… trigger=…]`.
    public static func readableLine(_ fields: [(name: String, value: String)]) -> String {
        var map: [String: String] = [:]
        for f in fields where map[f.name] == nil { map[f.name] = f.value }
        let priorityNames = ["EMERG", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG"]
        let priority =
            map["PRIORITY"].flatMap { Int($0) }.flatMap { (0..<8).contains($0) ? priorityNames[$0] : nil } ?? "INFO"
        var line = ""
        if let t = map["ROLLBACKD_TIME"] { line += t + " " }
        line += (map["SYSLOG_IDENTIFIER"] ?? "rollbackd") + " " + priority
        if let e = map["ROLLBACKD_EVENT"] { line += " " + e }
        line += ": " + (map["MESSAGE"] ?? "")
        let skip: Set<String> = [
            "MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "ROLLBACKD_EVENT",
            "ROLLBACKD_TIME", "ROLLBACKD_SEVERITY",
        ]
        let details = fields.filter { !skip.contains($0.name) }.map { f -> String in
            var name = f.name
            if name.hasPrefix("ROLLBACKD_") { name = String(name.dropFirst("ROLLBACKD_".count)) }
            let value = f.value.contains(" ") || f.value.contains("\n") ? JSONValue.quote(f.value) : f.value
            return name.lowercased() + "=" + value
        }
        if !details.isEmpty { line += " [" + details.joined(separator: " ") + "]" }
        return line
    }
}

/// The audit trail of engine events: each `Event` becomes one journald entry (see `JournalFields`).
public struct EventJournal: Sendable {
    public let writer: JournalWriter
    public let identifier: String
    public let service: String?

    public init(identifier: String = "rollbackd", service: String? = nil, writer: JournalWriter = JournalWriter()) {
        self.identifier = identifier
        self.service = service
        self.writer = writer
    }

    @discardableResult
    public func record(_ event: Event) -> JournalTarget {
        writer.send(JournalFields.fields(for: event, identifier: identifier, service: service))
    }
}
