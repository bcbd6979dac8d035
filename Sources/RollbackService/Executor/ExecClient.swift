#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import RollbackCore
import RollbackSystem
import Synchronization

/// The daemon's side: sends the order to the executor socket and relays its phase reports. The executor journals
/// its phases, so when the connection drops mid-rollback (the executor was killed) the request is sent again and
/// the new executor resumes where the old one stopped, never running a completed phase twice.
public struct ExecClient: Sendable {
    public static let defaultSocket = "/run/rollbackd-exec.sock"

    public var socketPath: String
    public var instance: String?
    /// Tries per rollback (the first plus re-sends after a lost connection).
    public var attempts: Int
    public var retryDelay: Interval

    public init(
        socketPath: String = ExecClient.defaultSocket, instance: String? = nil, attempts: Int = 5,
        retryDelay: Interval = .seconds(1)
    ) {
        self.socketPath = socketPath
        self.instance = instance
        self.attempts = max(1, attempts)
        self.retryDelay = retryDelay
    }

    enum SessionEnd: Sendable, Equatable {
        case finished(RollbackResult)
        case cannotConnect(String)
        case lost(String, heardBack: Bool)
        case cancelled
    }

    final class CancelFlag: Sendable {
        private let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .relaxed) }
        var isSet: Bool { value.load(ordering: .relaxed) }
    }

    public func run(
        _ order: RollbackOrder,
        phase: @escaping @Sendable (String, PhaseProgress, String) async -> Void
    ) async -> RollbackResult {
        var problem = ""
        var heardBack = false
        for attempt in 1...attempts {
            if attempt > 1 {
                do { try await Task.sleep(for: .milliseconds(retryDelay.milliseconds)) } catch {
                    return .interrupted("rollbackd stopped while reconnecting to the executor at \(socketPath)")
                }
            }
            switch await session(order, phase: phase) {
            case let .finished(result): return result
            case .cancelled:
                return .interrupted(
                    "rollbackd stopped while the executor was running; the executor finishes the phase on its own and the next start resumes from its journal"
                )
            case let .cannotConnect(why): problem = why
            case let .lost(why, heard): problem = why; heardBack = heardBack || heard
            }
        }
        let detail = "\(problem) (\(attempts) attempts)"
        // Never heard back: nothing was run, so nothing changed; otherwise a human must look.
        return heardBack
            ? .failed("lost the executor at \(socketPath): \(detail)")
            : .refused(GateResult(gate: "executor", passed: false, detail: detail))
    }

    func session(_ order: RollbackOrder, phase: @escaping @Sendable (String, PhaseProgress, String) async -> Void) async
        -> SessionEnd
    {
        let flag = CancelFlag()
        let (stream, continuation) = AsyncStream<ExecReply>.makeStream()
        let request = ExecRequest(incident: order.incident, to: order.to, instance: instance)
        let path = socketPath
        return await withTaskCancellationHandler {
            async let end = BlockingThread.run { () -> SessionEnd in
                defer { continuation.finish() }
                return Self.converse(path: path, request: request, flag: flag) { continuation.yield($0) }
            }
            for await reply in stream {
                if let name = reply.phase, let state = reply.state { await phase(name, state, reply.detail ?? "") }
            }
            return await end
        } onCancel: {
            flag.set()
        }
    }

    /// Blocking: connect, send, relay replies until the result, EOF, or cancellation.
    static func converse(path: String, request: ExecRequest, flag: CancelFlag, yield: (ExecReply) -> Void) -> SessionEnd
    {
        let fd: Int32
        do { fd = try UnixSocket.connect(path: path) } catch { return .cannotConnect(error.description) }
        defer { close(fd) }
        guard UnixSocket.writeAll(fd, ExecWire.line(request)) else {
            return .cannotConnect("\(path): the executor closed the connection before reading the request")
        }
        let reader = UnixSocket.LineReader(fd: fd)
        var heard = false
        while true {
            if flag.isSet { return .cancelled }
            switch reader.next(timeoutMs: 250, limit: ExecWire.maxLine) {
            case .timeout: continue
            case let .tooLong(limit):
                return .lost("\(path): a reply from the executor longer than \(limit) bytes", heardBack: true)
            case .eof:
                return .lost(
                    "\(path): the executor closed the connection without a result (it exited or was killed)",
                    heardBack: heard)
            case let .failed(why):
                return .lost("\(path): reading the executor's reply: \(why)", heardBack: heard)
            case let .line(bytes):
                heard = true
                guard let reply = ExecWire.decode(ExecReply.self, bytes) else {
                    return .lost(
                        "\(path): an unreadable reply from the executor: \(String(decoding: bytes.prefix(200), as: UTF8.self))",
                        heardBack: true)
                }
                if let result = reply.rollbackResult { return .finished(result) }
                yield(reply)
            }
        }
    }
}
