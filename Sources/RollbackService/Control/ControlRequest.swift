import RollbackCore

/// One control-socket request, read from its JSON line, and what it does to the engine. The socket, the caller's
/// credentials and `status` (which needs the daemon's snapshot) stay in `ControlServer`/`ControlHandler`; this part
/// depends on RollbackCore only, so the fuzz target `control` compiles it as it is
/// (Tests/Fuzz/Targets/control.swift).
public enum ControlRequest: Sendable, Equatable {
    case status
    case approve(id: String)
    case deny(id: String)
    case rearm
    /// `for`: nil pauses until `resume`.
    case pause(for: Interval?)
    case resume
    case markKnownGood(version: String)
    case rollback(to: String?)

    static let known = "status, approve, deny, rearm, pause, resume, rollback, mark-known-good"

    /// The request in a request line (`{"command": "approve", "id": "INC-…"}`), or the error to answer with.
    public static func parse(line: [UInt8]) -> Result<ControlRequest, EngineRefusal> {
        guard let request = try? JSONParser.parse(bytes: line) else {
            return .failure(EngineRefusal("the request is not one line of JSON"))
        }
        return parse(request)
    }

    public static func parse(_ request: JSONValue) -> Result<ControlRequest, EngineRefusal> {
        guard case let .string(command)? = request["command"] else {
            return .failure(EngineRefusal("missing \"command\""))
        }
        func string(_ key: String) -> String? {
            if case let .string(s)? = request[key] { return s }
            return nil
        }
        switch command {
        case "status": return .success(.status)
        case "approve":
            guard let id = string("id") else { return .failure(EngineRefusal("approve needs an incident id")) }
            return .success(.approve(id: id))
        case "deny":
            guard let id = string("id") else { return .failure(EngineRefusal("deny needs an incident id")) }
            return .success(.deny(id: id))
        case "rearm": return .success(.rearm)
        case "pause":
            guard let text = string("for") else { return .success(.pause(for: nil)) }
            guard let d = Interval(parsing: text), d.milliseconds > 0 else {
                return .failure(EngineRefusal("\(JSONValue.quote(text)) is not a duration such as \"30m\""))
            }
            return .success(.pause(for: d))
        case "resume": return .success(.resume)
        case "mark-known-good":
            guard let version = string("version") else {
                return .failure(EngineRefusal("mark-known-good needs a version"))
            }
            return .success(.markKnownGood(version: version))
        case "rollback": return .success(.rollback(to: string("to")))
        default:
            return .failure(EngineRefusal("unknown command \(JSONValue.quote(command)); known: \(known)"))
        }
    }

    /// Runs the command on the engine as `who` (every command but `status`, which only reads).
    public func apply(to engine: inout Engine, by who: String, now: Timestamp) throws(EngineRefusal) -> EngineOutput {
        var out = EngineOutput()
        switch self {
        case .status: break
        case let .approve(id): out = try engine.approve(id, by: who, now: now)
        case let .deny(id): out.events = try engine.deny(id, by: who, now: now)
        case .rearm: out.events = try engine.rearm(by: who, now: now)
        case let .pause(duration): out.events = engine.pause(until: duration.map { now + $0 }, by: who, now: now)
        case .resume: out.events = try engine.resume(by: who, now: now)
        case let .markKnownGood(version): out.events = try engine.markKnownGood(version, by: who, now: now)
        case let .rollback(to): out = try engine.requestRollback(to: to, by: who, now: now)
        }
        return out
    }

    /// The answer's message once `apply` succeeded.
    public func message(_ out: EngineOutput) -> String {
        let from = out.rollback?.from ?? "?", to = out.rollback?.to ?? "?"
        switch self {
        case .status: return "status"
        case let .approve(id): return "approved \(id): rolling back \(from) -> \(to)"
        case let .deny(id): return "denied \(id)"
        case .rearm: return "automatic rollbacks re-armed"
        case let .pause(duration):
            return duration.map { "paused for \($0): triggers notify only" }
                ?? "paused until rollbackd resume: triggers notify only"
        case .resume: return "automation resumed"
        case let .markKnownGood(version): return "\(version) marked known-good"
        case .rollback: return "rolling back \(from) -> \(to) (incident \(out.rollback?.incident ?? "?"))"
        }
    }
}
