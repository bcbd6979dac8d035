#if canImport(Glibc)
import Glibc
#endif
import CSystemd
import RollbackCore

/// A failure to open or read the journal, naming what was opened.
public struct JournalReadError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var code: Int32
    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// What `rollbackd history` asks of the journal.
public struct JournalQuery: Sendable, Equatable {
    /// `SYSLOG_IDENTIFIER` the events were written with.
    public var identifier: String = "rollbackd"
    public var since: Timestamp?
    public var until: Timestamp?
    public var incident: String?
    /// Read journal files from this directory instead of the system journal.
    public var directory: String?

    public init(
        identifier: String = "rollbackd", since: Timestamp? = nil, until: Timestamp? = nil,
        incident: String? = nil, directory: String? = nil
    ) {
        self.identifier = identifier
        self.since = since
        self.until = until
        self.incident = incident
        self.directory = directory
    }
}

/// One event read back, with where journald keeps it.
public struct JournalRecord: Sendable, Equatable {
    public var event: Event
    /// When journald received it.
    public var received: Timestamp
    public var cursor: String
}

/// Reads rollbackd's events back through libsystemd's journal API (`sd_journal_open`, matches on `MESSAGE_ID`,
/// `SYSLOG_IDENTIFIER` and `ROLLBACKD_INCIDENT`, forward iteration). The `sd_journal` handle is owned here and
/// closed in `deinit`; the type is not `Sendable` (use it from one thread).
public final class JournalReader {
    private var handle: OpaquePointer?

    public init(directory: String? = nil) throws(JournalReadError) {
        var j: OpaquePointer?
        let rc: Int32
        if let directory {
            rc = sd_journal_open_directory(&j, directory, 0)
        } else {
            rc = sd_journal_open(&j, Int32(SD_JOURNAL_LOCAL_ONLY))
        }
        guard rc >= 0, let j else {
            throw JournalReadError(operation: "sd_journal_open \(directory ?? "(system journal)")", code: -rc)
        }
        handle = j
    }

    deinit {
        if let handle { sd_journal_close(handle) }
    }

    private func addMatch(_ text: String) throws(JournalReadError) {
        let bytes = Array(text.utf8)
        let rc = bytes.withUnsafeBytes { sd_journal_add_match(handle, $0.baseAddress, $0.count) }
        if rc < 0 { throw JournalReadError(operation: "sd_journal_add_match \(text)", code: -rc) }
    }

    /// Every rollbackd event matching `query`, oldest first.
    public func events(_ query: JournalQuery) throws(JournalReadError) -> [JournalRecord] {
        sd_journal_flush_matches(handle)
        for kind in EventKind.allCases { try addMatch("MESSAGE_ID=" + JournalFields.messageID(for: kind)) }
        try addMatch("SYSLOG_IDENTIFIER=" + query.identifier)
        if let incident = query.incident { try addMatch("ROLLBACKD_INCIDENT=" + incident) }
        _ = sd_journal_set_data_threshold(handle, 0)

        var rc: Int32
        if let since = query.since {
            rc = sd_journal_seek_realtime_usec(handle, UInt64(max(0, since.millisecondsSinceEpoch)) * 1000)
        } else {
            rc = sd_journal_seek_head(handle)
        }
        if rc < 0 { throw JournalReadError(operation: "sd_journal_seek", code: -rc) }

        var records: [JournalRecord] = []
        while true {
            rc = sd_journal_next(handle)
            if rc < 0 { throw JournalReadError(operation: "sd_journal_next", code: -rc) }
            if rc == 0 { break }
            var usec: UInt64 = 0
            _ = sd_journal_get_realtime_usec(handle, &usec)
            let received = Timestamp(millisecondsSinceEpoch: Int64(usec / 1000))
            if let since = query.since, received < since { continue }
            if let until = query.until, received > until { break }
            let fields = currentFields()
            guard let event = JournalFields.event(from: fields) else { continue }
            var cursor = ""
            var raw: UnsafeMutablePointer<CChar>?
            if sd_journal_get_cursor(handle, &raw) >= 0, let raw {
                cursor = String(cString: raw)
                free(raw)
            }
            records.append(JournalRecord(event: event, received: received, cursor: cursor))
        }
        return records
    }

    /// All `NAME=value` fields of the current entry (the first value wins for a repeated name).
    private func currentFields() -> [String: String] {
        var fields: [String: String] = [:]
        sd_journal_restart_data(handle)
        var data: UnsafeRawPointer?
        var length = 0
        while sd_journal_enumerate_data(handle, &data, &length) > 0 {
            guard let data else { continue }
            JournalFields.add(UnsafeRawBufferPointer(start: data, count: length), to: &fields)
        }
        return fields
    }
}
