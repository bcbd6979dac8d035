// fuzz-sources: Sources/RollbackService/Executor/ExecWire.swift
import FoundationEssentials
import RollbackCore

/// The executor socket's wire (RollbackService's `ExecWire`, compiled into this target): any bytes as the request line
/// the privileged executor reads (`ExecWire.decode(ExecRequest.self, …)`, Foundation's `JSONDecoder`, then the
/// instance-name check), and as a reply line the daemon reads back (`ExecReply`, its result). Whatever decodes encodes
/// to a line that decodes to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExec(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let request = ExecWire.decode(ExecRequest.self, bytes) {
        if let name = request.instance { _ = ExecRequest.validInstance(name) }
        let line = ExecWire.line(request)
        precondition(line.last == UInt8(ascii: "\n") && !line.dropLast().contains(UInt8(ascii: "\n")))
        precondition(ExecWire.decode(ExecRequest.self, Array(line.dropLast())) == request, "request round trip")
    }
    if let reply = ExecWire.decode(ExecReply.self, bytes) {
        _ = reply.rollbackResult
        let line = ExecWire.line(reply)
        precondition(line.last == UInt8(ascii: "\n") && !line.dropLast().contains(UInt8(ascii: "\n")))
        precondition(ExecWire.decode(ExecReply.self, Array(line.dropLast())) == reply, "reply round trip")
    }
    return 0
}
