import RollbackCore

/// The thresholds.json reader and loader: any bytes are either a loaded table or a `ConfigError` naming the file,
/// never a crash. A table that loads is also rendered as the effective trigger table (`rollbackd check`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzThresholds(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let loaded = try? Thresholds.load(bytes: bytes, file: "fuzz.json") {
        _ = TriggerTable.json(loaded.thresholds)
    }
    return 0
}
