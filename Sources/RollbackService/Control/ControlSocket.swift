import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem

/// The daemon's control socket: one JSON request line in, one JSON response line out. Only root, the daemon's
/// own user and members of its group may connect (socket mode 0660, and SO_PEERCRED checked again per request).
/// Every command is a journald event naming the caller's uid.
public final class ControlServer: Sendable {
    public let path: String
    private let fd: Int32
    private let daemon: Daemon

    public init(path: String, daemon: Daemon) throws(UnixSocket.Failure) {
        self.path = path
        self.daemon = daemon
        self.fd = try UnixSocket.listen(path: path, mode: 0o660)
    }

    /// Accepts connections on a dedicated thread until the process ends.
    public func start() {
        let server = self
        Task.detached {
            await BlockingThread.run { server.acceptLoop() }
        }
    }

    public static func authorized(_ peer: UnixSocket.Peer) -> Bool {
        peer.uid == 0 || peer.uid == getuid() || peer.gid == getgid() || peer.groups.contains(getgid())
    }

    private final class ResultBox: @unchecked Sendable {
        var value: JSONValue = .null
    }

    private func acceptLoop() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var response: JSONValue
        if let peer = UnixSocket.peer(client), Self.authorized(peer) {
            if let line = UnixSocket.readLine(client), let request = try? JSONParser.parse(bytes: line) {
                let box = ResultBox()
                let done = DispatchSemaphore(value: 0)
                let daemon = self.daemon
                Task {
                    box.value = await ControlHandler.respond(to: request, from: peer, daemon: daemon)
                    done.signal()
                }
                done.wait()
                response = box.value
            } else {
                response = ControlHandler.failure("the request is not one line of JSON")
            }
        } else {
            response = ControlHandler.failure(
                "permission denied: only root and the rollbackd group may control rollbackd")
        }
        _ = UnixSocket.writeAll(client, Array((response.serialized + "\n").utf8))
    }
}

/// Turns a control request into an engine command.
public enum ControlHandler {
    static func failure(_ message: String) -> JSONValue {
        .object([("ok", .bool(false)), ("error", .string(message))])
    }

    static func success(_ message: String, _ extra: [(key: String, value: JSONValue)] = []) -> JSONValue {
        .object([("ok", .bool(true)), ("message", .string(message))] + extra)
    }

    /// Runs a command whose only output is events.
    public static func events(
        _ daemon: Daemon, _ body: @escaping @Sendable (inout Engine, Timestamp) throws(EngineRefusal) -> [Event]
    ) async throws(EngineRefusal) {
        _ = try await daemon.command { engine, now throws(EngineRefusal) in
            var out = EngineOutput()
            out.events = try body(&engine, now)
            return out
        }
    }

    static func respond(to request: JSONValue, from peer: UnixSocket.Peer, daemon: Daemon) async -> JSONValue {
        guard case let .string(command)? = request["command"] else { return failure("missing \"command\"") }
        let who = peer.label
        func string(_ key: String) -> String? {
            if case let .string(s)? = request[key] { return s }
            return nil
        }
        do {
            switch command {
            case "status":
                let snap = await daemon.snapshot()
                let now = SystemTime.now()
                var report = StatusReport.json(
                    config: snap.config, state: snap.state, samples: snap.samples, status: snap.status, now: now)
                var text = StatusReport.text(
                    config: snap.config, state: snap.state, samples: snap.samples, status: snap.status, now: now)
                // "Rollback procedure tested": warn when the last successful drill is older than 30 days (or none).
                let drill = DrillLog(stateDirectory: daemon.options.stateDirectory).warning(now: now)
                if case var .object(members) = report {
                    members.append(("drillWarning", drill.map { .string($0) } ?? .null))
                    report = .object(members)
                }
                if let drill { text += "warning: \(drill)\n" }
                return success(snap.status, [("report", report), ("text", .string(text))])
            case "approve":
                guard let id = string("id") else { return failure("approve needs an incident id") }
                let out = try await daemon.command { engine, now throws(EngineRefusal) in
                    try engine.approve(id, by: who, now: now)
                }
                return success(
                    "approved \(id): rolling back \(out.rollback?.from ?? "?") -> \(out.rollback?.to ?? "?")")
            case "deny":
                guard let id = string("id") else { return failure("deny needs an incident id") }
                try await events(daemon) { engine, now throws(EngineRefusal) in try engine.deny(id, by: who, now: now) }
                return success("denied \(id)")
            case "rearm":
                try await events(daemon) { engine, now throws(EngineRefusal) in try engine.rearm(by: who, now: now) }
                return success("automatic rollbacks re-armed")
            case "pause":
                var duration: Interval?
                if let text = string("for") {
                    guard let d = Interval(parsing: text), d.milliseconds > 0 else {
                        return failure("\(JSONValue.quote(text)) is not a duration such as \"30m\"")
                    }
                    duration = d
                }
                let pauseFor = duration
                try await events(daemon) { engine, now throws(EngineRefusal) in
                    engine.pause(until: pauseFor.map { now + $0 }, by: who, now: now)
                }
                return success(
                    duration.map { "paused for \($0): triggers notify only" }
                        ?? "paused until rollbackd resume: triggers notify only")
            case "resume":
                try await events(daemon) { engine, now throws(EngineRefusal) in try engine.resume(by: who, now: now) }
                return success("automation resumed")
            case "mark-known-good":
                guard let version = string("version") else { return failure("mark-known-good needs a version") }
                try await events(daemon) { engine, now throws(EngineRefusal) in
                    try engine.markKnownGood(version, by: who, now: now)
                }
                return success("\(version) marked known-good")
            case "rollback":
                let to = string("to")
                let out = try await daemon.command { engine, now throws(EngineRefusal) in
                    try engine.requestRollback(to: to, by: who, now: now)
                }
                return success(
                    "rolling back \(out.rollback?.from ?? "?") -> \(out.rollback?.to ?? "?") (incident \(out.rollback?.incident ?? "?"))"
                )
            default:
                return failure(
                    "unknown command \(JSONValue.quote(command)); known: status, approve, deny, rearm, pause, resume, rollback, mark-known-good"
                )
            }
        } catch {
            return failure(error.message)
        }
    }
}

/// The CLI side: sends one request, returns the response object.
public enum ControlClient {
    public static let defaultSocket = "/run/rollbackd/control.sock"

    public static func send(_ request: JSONValue, socket path: String) throws(UnixSocket.Failure) -> JSONValue {
        let fd = try UnixSocket.connect(path: path)
        defer { close(fd) }
        guard UnixSocket.writeAll(fd, Array((request.serialized + "\n").utf8)) else {
            throw UnixSocket.Failure(description: "write \(path): \(String(cString: strerror(errno)))")
        }
        guard let line = UnixSocket.readLine(fd, timeoutMs: 30_000) else {
            throw UnixSocket.Failure(description: "\(path): no answer from rollbackd within 30s")
        }
        do {
            return try JSONParser.parse(bytes: line)
        } catch {
            throw UnixSocket.Failure(description: "\(path): unreadable answer: \(error)")
        }
    }
}
