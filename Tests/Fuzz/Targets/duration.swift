import RollbackCore

/// The duration parser (`"1m30s"`, the config's and `rollbackd pause --for`'s) and the exposition's number parser
/// (sample values and `le` bounds): any text is a value or nil; a parsed duration prints back to one that parses to
/// the same length.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzDuration(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if let interval = Interval(parsing: text) {
        precondition(
            Interval(parsing: interval.description)?.milliseconds == interval.milliseconds,
            "\(interval.description) does not parse back to \(interval.milliseconds) ms")
    }
    _ = ExpositionParser.parseValue(text)
    return 0
}
