// fuzz-sources: Sources/RollbackSystem/Journal/JournalFields.swift
import RollbackCore

/// The journal reader's field decoding (RollbackSystem's `JournalFields`, compiled into this target): each line of
/// the input is one data item of an entry as `sd_journal_enumerate_data` gives it (`NAME=value`), added as
/// `JournalReader` does, then decoded to an event (`rollbackd history`), with its `ROLLBACKD_TIME` (RFC 3339) and
/// `__REALTIME_TIMESTAMP`. An event read back and written as fields again reads back the same.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJournal(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buffer = UnsafeRawBufferPointer(start: data, count: size)
    var fields: [String: String] = [:]
    var start = 0
    for i in 0...size where i == size || buffer[i] == UInt8(ascii: "\n") {
        JournalFields.add(UnsafeRawBufferPointer(rebasing: buffer[start..<i]), to: &fields)
        start = i + 1
    }
    _ = Timestamp(iso8601: String(decoding: buffer, as: UTF8.self))
    _ = fields["MESSAGE_ID"].map(JournalFields.kind(forMessageID:))
    guard let event = JournalFields.event(from: fields) else { return 0 }
    precondition(event.kind.rawValue == fields["ROLLBACKD_EVENT"], "the kind is not the one named")
    let written = JournalFields.fields(for: event)
    let again = JournalFields.event(
        from: Dictionary(written.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first }))
    precondition(
        again?.kind == event.kind && again?.message == event.message && again?.severity == event.severity
            && again?.incident == event.incident && again?.reason == event.reason,
        "an event written as journal fields does not read back the same")
    return 0
}
