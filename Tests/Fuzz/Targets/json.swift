import RollbackCore

/// The JSON parser under every JSON rollbackd reads from outside: thresholds.json, the control-socket request line
/// (`{"command": …}`), the Prometheus HTTP API's answers and a version endpoint's JSON. Whatever parses is
/// serialized again and must parse to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let value = try? JSONParser.parse(bytes: bytes) else { return 0 }
    let again = try? JSONParser.parse(value.serialized)
    precondition(again == value, "serialized JSON does not parse back to the same value")
    _ = value["command"]
    _ = value["data"]?["result"]
    return 0
}
