import FoundationEssentials
import RollbackCore

/// The wire between the unprivileged daemon and `rollbackd execute` on the executor socket: one request line
/// (JSON), then reply lines (JSON), one per phase report and a last one with the result. The request carries only
/// a choice (which incident, which target, which configured instance); everything else the executor reads itself.
public struct ExecRequest: Codable, Sendable, Equatable {
    public var incident: String
    public var to: String
    /// `rollbackd@NAME`: the executor reads /etc/rollbackd/NAME.json and /var/lib/rollbackd/NAME.
    public var instance: String?

    public init(incident: String, to: String, instance: String?) {
        self.incident = incident
        self.to = to
        self.instance = instance
    }

    /// Instance names are file names under the configuration and state directories: no paths, no dot-dot.
    public static func validInstance(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 64 else { return false }
        func ok(_ c: Unicode.Scalar) -> Bool {
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || "_.@-".unicodeScalars.contains(c))
        }
        return first != "." && first != "-" && name.unicodeScalars.allSatisfy(ok)
    }
}

public struct ExecReply: Codable, Sendable, Equatable {
    public var phase: String?
    public var state: PhaseProgress?
    public var detail: String?
    /// The last line: succeeded, failed, refused, demoted or interrupted.
    public var result: String?
    /// For `refused`: the gate that stopped it.
    public var gate: String?
    /// For `awaiting`: the step of the plan that waits for approval.
    public var step: Int?

    public static func report(_ phase: String, _ state: PhaseProgress, _ detail: String) -> ExecReply {
        ExecReply(phase: phase, state: state, detail: detail)
    }

    public static func final(_ result: RollbackResult) -> ExecReply {
        switch result {
        case .succeeded: return ExecReply(result: "succeeded")
        case let .failed(why): return ExecReply(detail: why, result: "failed")
        case let .refused(gate): return ExecReply(detail: gate.detail, result: "refused", gate: gate.gate)
        case let .demotedToApproval(why): return ExecReply(detail: why, result: "demoted")
        case let .interrupted(why): return ExecReply(detail: why, result: "interrupted")
        case let .awaitingApproval(step, why): return ExecReply(detail: why, result: "awaiting", step: step)
        }
    }

    /// The result of a last line; nil for a phase report (or an unknown result word).
    public var rollbackResult: RollbackResult? {
        let why = detail ?? ""
        switch result {
        case "succeeded": return .succeeded
        case "failed": return .failed(why)
        case "refused": return .refused(GateResult(gate: gate ?? "executor", passed: false, detail: why))
        case "demoted": return .demotedToApproval(why)
        case "interrupted": return .interrupted(why)
        case "awaiting": return .awaitingApproval(step: step ?? 0, why)
        default: return nil
        }
    }
}

/// The wire's encoding. Depends on RollbackCore and FoundationEssentials only, so the fuzz target `exec` compiles it
/// as it is (Tests/Fuzz/Targets/exec.swift).
enum ExecWire {
    static let maxLine = 64 << 10

    static func line<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var bytes = (try? Array(encoder.encode(value))) ?? Array("{}".utf8)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    static func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> T? {
        try? JSONDecoder().decode(type, from: Data(bytes))
    }
}
