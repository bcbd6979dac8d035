import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem
import Synchronization

/// The daemon's control socket: one JSON request line in, one JSON response line out. Only root, the daemon's
/// own user and members of its group may connect (socket mode 0660, and SO_PEERCRED checked again per request).
/// Every command is a journald event naming the caller's uid.
///
/// Each connection is served on a thread of its own, so a caller that connects and sends nothing (or drips bytes,
/// or never reads its answer) holds only its own thread until its deadline: `status` for everyone else and the
/// daemon's ticks go on. The callers are bounded (`Limits`): how many at once, how long a request may take to
/// arrive, how large it may be, and how long writing the answer may block.
public final class ControlServer: Sendable {
    public struct Limits: Sendable, Equatable {
        /// Connections served at once; one more gets a one-line refusal and is closed.
        public var connections: Int
        /// The longest request line accepted (JSON requests are a few hundred bytes).
        public var requestBytes: Int
        /// How long a connection may take to send its whole request line.
        public var requestDeadline: Interval
        /// How long writing the answer may block on a caller that does not read it.
        public var replyDeadline: Interval

        public init(
            connections: Int = 64, requestBytes: Int = 64 << 10, requestDeadline: Interval = .seconds(5),
            replyDeadline: Interval = .seconds(5)
        ) {
            self.connections = max(1, connections)
            self.requestBytes = requestBytes
            self.requestDeadline = requestDeadline
            self.replyDeadline = replyDeadline
        }
    }

    public let path: String
    public let limits: Limits
    private let fd: Int32
    private let daemon: Daemon
    private let active = Atomic<Int>(0)

    public init(path: String, daemon: Daemon, limits: Limits = Limits()) throws(UnixSocket.Failure) {
        self.path = path
        self.daemon = daemon
        self.limits = limits
        self.fd = try UnixSocket.listen(path: path, mode: 0o660, backlog: Int32(limits.connections))
    }

    /// Accepts connections on a dedicated thread until the process ends; each is served on a thread of its own.
    public func start() {
        let server = self
        // A thread of its own from the start, not a task: the accept loop must not wait for a free thread of the
        // cooperative pool, which busy or blocked work may hold.
        if !BlockingThread.start({ server.acceptLoop() }) {
            Task.detached { await BlockingThread.run { server.acceptLoop() } }
        }
    }

    public static func authorized(_ peer: UnixSocket.Peer) -> Bool {
        peer.uid == 0 || peer.uid == getuid() || peer.gid == getgid() || peer.groups.contains(getgid())
    }

    /// Why a caller is refused, naming the group it would need.
    static func refusal(_ peer: UnixSocket.Peer?) -> String {
        let group = UnixSocket.groupName(getgid())
        let who = peer.map { "uid \($0.uid) is not in group \(group)" } ?? "the caller's credentials are unreadable"
        return "permission denied: \(who); only root and members of group \(group) may control rollbackd"
    }

    /// Connections being served now.
    public var connections: Int { active.load(ordering: .relaxed) }

    private final class ResultBox: @unchecked Sendable {
        var value: JSONValue = .null
    }

    private func acceptLoop() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                // EMFILE/ENFILE/ENOMEM: out of descriptors or memory for now; the backlog waits, try again soon.
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                    usleep(100_000)
                    continue
                }
                return
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            UnixSocket.setSendTimeout(client, milliseconds: limits.replyDeadline.milliseconds)
            let added = active.add(1, ordering: .relaxed).newValue
            let server = self
            if added > limits.connections
                || !BlockingThread.start({
                    server.handle(client)
                    close(client)
                    server.active.subtract(1, ordering: .relaxed)
                })
            {
                active.subtract(1, ordering: .relaxed)
                reply(
                    client,
                    ControlHandler.failure(
                        "busy: \(limits.connections) control connections are open already; try again"))
                close(client)
            }
        }
    }

    private func reply(_ client: Int32, _ response: JSONValue) {
        _ = UnixSocket.writeAll(client, Array((response.serialized + "\n").utf8))
    }

    private func handle(_ client: Int32) {
        let caller = UnixSocket.peer(client)
        guard let peer = caller, Self.authorized(peer) else {
            reply(client, ControlHandler.failure(Self.refusal(caller)))
            return
        }
        let line: [UInt8]
        switch UnixSocket.LineReader(fd: client).next(
            timeoutMs: Int32(clamping: limits.requestDeadline.milliseconds), limit: limits.requestBytes)
        {
        case let .line(bytes): line = bytes
        case .timeout:
            return reply(client, ControlHandler.failure("no request line within \(limits.requestDeadline)"))
        case let .tooLong(limit):
            return reply(client, ControlHandler.failure("the request is longer than \(limit) bytes"))
        case .eof, .failed:
            return // the caller is gone: nobody to answer
        }
        let request: ControlRequest
        switch ControlRequest.parse(line: line) {
        case let .success(r): request = r
        case let .failure(refusal): return reply(client, ControlHandler.failure(refusal.message))
        }
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        let daemon = self.daemon
        Task {
            box.value = await ControlHandler.respond(to: request, from: peer, daemon: daemon)
            done.signal()
        }
        done.wait()
        reply(client, box.value)
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

    static func respond(to command: ControlRequest, from peer: UnixSocket.Peer, daemon: Daemon) async -> JSONValue {
        guard command != .status else { return await status(daemon) }
        let who = peer.label
        do {
            let out = try await daemon.command { engine, now throws(EngineRefusal) in
                try command.apply(to: &engine, by: who, now: now)
            }
            return success(command.message(out))
        } catch {
            return failure(error.message)
        }
    }

    static func status(_ daemon: Daemon) async -> JSONValue {
        let snap = await daemon.snapshot()
        let now = SystemTime.now()
        var report = StatusReport.json(
            config: snap.config, state: snap.state, samples: snap.samples, status: snap.status, now: now)
        var text = StatusReport.text(
            config: snap.config, state: snap.state, samples: snap.samples, status: snap.status, now: now)
        // "Rollback procedure tested": warn when the last successful drill is older than 30 days (or none).
        let drill = DrillLog(stateDirectory: daemon.options.stateDirectory).warning(now: now)
        let fleet = await daemon.fleetStanding
        if case var .object(members) = report {
            members.append(("drillWarning", drill.map { .string($0) } ?? .null))
            members.append(("fleet", fleet.map(\.json) ?? .null))
            report = .object(members)
        }
        if let fleet { text += fleet.line + "\n" }
        if let drill { text += "warning: \(drill)\n" }
        return success(snap.status, [("report", report), ("text", .string(text))])
    }
}

/// The CLI side: sends one request, returns the response object.
public enum ControlClient {
    public static let defaultSocket = "/run/rollbackd/control.sock"

    public static func send(_ request: JSONValue, socket path: String) throws(UnixSocket.Failure) -> JSONValue {
        // Serialized before connecting: the daemon gives a connection a few seconds to send its request.
        let bytes = Array((request.serialized + "\n").utf8)
        let fd = try UnixSocket.connect(path: path)
        defer { close(fd) }
        // The answer may already be there when the write failed: the daemon refuses a request it will not read
        // to the end (too long, or a caller it does not serve) and closes.
        let written = UnixSocket.writeAll(fd, bytes)
        let writeError = errno
        let line: [UInt8]
        switch UnixSocket.LineReader(fd: fd).next(timeoutMs: 30_000, limit: 64 << 20) {
        case let .line(bytes): line = bytes
        case .timeout: throw UnixSocket.Failure(description: "\(path): no answer from rollbackd within 30s")
        case let .tooLong(limit): throw UnixSocket.Failure(description: "\(path): an answer longer than \(limit) bytes")
        case .eof, .failed:
            if !written {
                throw UnixSocket.Failure(description: "write \(path): \(String(cString: strerror(writeError)))")
            }
            throw UnixSocket.Failure(description: "\(path): rollbackd closed the connection without an answer")
        }
        do {
            return try JSONParser.parse(bytes: line)
        } catch {
            throw UnixSocket.Failure(description: "\(path): unreadable answer: \(error)")
        }
    }
}
