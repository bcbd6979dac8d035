// fuzz-sources: Sources/RollbackSystem/Sampling/VersionBody.swift Sources/RollbackSystem/Sampling/SourceReport.swift Sources/RollbackSystem/HTTP/HTTPTypes.swift
import RollbackCore

/// The version reader's body (RollbackSystem's `VersionBody`, compiled into this target): the first line of the input
/// is the `jsonField` (a dot path; empty: none), the rest the body a version URL or file answered. A version read is
/// never empty; without a field it is one trimmed line.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVersion(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let split = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.count
    let field = String(decoding: bytes[..<split], as: UTF8.self)
    let body = split < bytes.count ? Array(bytes[(split + 1)...]) : []
    let r = VersionBody.extract(body, jsonField: field.isEmpty ? nil : field, url: "http://fuzz/version")
    precondition((r.version == nil) != (r.reason == nil), "a version or a reason, not both")
    if let v = r.version {
        precondition(!v.isEmpty, "an empty version")
        if field.isEmpty {
            precondition(!v.contains("\n") && httpTrim(v) == v, "not one trimmed line: \(v.debugDescription)")
        }
    }
    _ = VersionBody.firstLine(bytes)
    return 0
}
