#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem

/// `rollbackd execute`: the privileged half of a rollback, one connection per process (rollbackd-exec.socket,
/// `Accept=yes`, the connection on stdin and stdout). It takes one request — an incident id, a target release and
/// which configured instance — and trusts nothing else from the caller: it reads the configuration and the
/// watchdog's saved state itself, waits for the rollback lock, re-checks the gates (`ExecutionCheck`), and only then
/// runs the strategy through the one `RollbackProcedure`. Every phase is a journald entry written by this process
/// (`executor_phase`), and a reply line to the caller. When the caller goes away mid-rollback the executor finishes
/// anyway: half a rollback is worse than a finished one, and the caller's next request finds it done.
public struct ExecServer: Sendable {
    public struct Paths: Sendable, Equatable {
        /// The configuration of the default instance.
        public var config: String
        /// Where `rollbackd@NAME` keeps `NAME.json`.
        public var configDirectory: String
        /// The watchdog's state directory (read only); an instance's is `<dir>/NAME`.
        public var daemonState: String
        /// The executor's own journal and lock; an instance's is `<dir>/NAME`.
        public var executorState: String

        public init(
            config: String = ConfigFile.defaultPath, configDirectory: String = "/etc/rollbackd",
            daemonState: String = "/var/lib/rollbackd", executorState: String = "/var/lib/rollbackd-exec"
        ) {
            self.config = config
            self.configDirectory = configDirectory
            self.daemonState = daemonState
            self.executorState = executorState
        }

        /// The three paths one request uses.
        public func resolved(instance: String?) -> (config: String, daemonState: String, executorState: String) {
            guard let name = instance else { return (config, daemonState, executorState) }
            return ("\(configDirectory)/\(name).json", "\(daemonState)/\(name)", "\(executorState)/\(name)")
        }
    }

    public var paths: Paths
    /// Callers allowed besides root: members of this group (the watchdog's own).
    public var group: String
    public var journal: JournalWriter
    /// How long to wait for a rollback lock held by an earlier executor still finishing its phases.
    public var lockWait: Interval

    public init(
        paths: Paths = Paths(), group: String = "rollbackd", journal: JournalWriter = JournalWriter(),
        lockWait: Interval = .minutes(10)
    ) {
        self.paths = paths
        self.group = group
        self.journal = journal
        self.lockWait = lockWait
    }

    /// Whether a peer may ask: root, or a member of `group` (primary or supplementary).
    public static func authorized(_ peer: UnixSocket.Peer, groupID: UInt32?) -> Bool {
        if peer.uid == 0 { return true }
        guard let gid = groupID else { return false }
        return peer.gid == gid || peer.groups.contains(gid)
    }

    /// Serves the one connection on `input`/`output` (the same socket under systemd). Returns the process exit
    /// status: 0 when the rollback succeeded (or had already), 1 when it was refused or failed, 2 for a bad request.
    public func serve(input: Int32, output: Int32) async -> Int32 {
        // A caller that stops reading never holds up the rollback: a reply write blocks at most 5 s, then the
        // rollback goes on without that caller (as when it went away).
        UnixSocket.setSendTimeout(output, milliseconds: 5000)
        let reply = ReplyChannel(fd: output)
        guard let peer = UnixSocket.peer(input) else {
            let why =
                "standard input is not a Unix socket: rollbackd execute is started by rollbackd-exec.socket, one connection at a time"
            Terminal.writeError("rollbackd execute: \(why)")
            reply.send(.final(.refused(GateResult(gate: "caller", passed: false, detail: why))))
            return 2
        }
        guard Self.authorized(peer, groupID: UnixSocket.groupID(group)) else {
            let why =
                "uid \(peer.uid) (gid \(peer.gid)) is not in group \(group): only root and members of group \(group) may ask for rollbacks"
            record(
                Event(
                    kind: .executorRequest, at: SystemTime.now(),
                    message: "Executor refused a request from uid \(peer.uid): \(why).",
                    severity: .high, decision: "refuse", reason: why,
                    extra: ["caller_uid": "\(peer.uid)", "gate": "caller"]))
            reply.send(.final(.refused(GateResult(gate: "caller", passed: false, detail: why))))
            return 1
        }
        let reader = UnixSocket.LineReader(fd: input)
        let request: ExecRequest
        switch reader.next(timeoutMs: 10_000, limit: ExecWire.maxLine) {
        case let .line(bytes):
            guard let r = ExecWire.decode(ExecRequest.self, bytes) else {
                return badRequest(
                    reply, peer,
                    "the request is not an ExecRequest JSON line: \(String(decoding: bytes.prefix(200), as: UTF8.self))"
                )
            }
            request = r
        case .timeout: return badRequest(reply, peer, "no request line within 10 s")
        case let .tooLong(limit): return badRequest(reply, peer, "the request is longer than \(limit) bytes")
        case .eof: return badRequest(reply, peer, "the caller closed the connection before sending a request")
        case let .failed(why): return badRequest(reply, peer, "reading the request: \(why)")
        }
        if let name = request.instance, !ExecRequest.validInstance(name) {
            return badRequest(reply, peer, "instance name \"\(name)\" is not a plain name (letters, digits, _ . @ -)")
        }
        let result = await execute(request, caller: peer.uid) { report in reply.send(report) }
        reply.send(.final(result))
        if case .succeeded = result { return 0 }
        return 1
    }

    private func badRequest(_ reply: ReplyChannel, _ peer: UnixSocket.Peer, _ why: String) -> Int32 {
        record(
            Event(
                kind: .executorRequest, at: SystemTime.now(),
                message: "Executor refused a malformed request from uid \(peer.uid): \(why).",
                severity: .high, decision: "refuse", reason: why,
                extra: ["caller_uid": "\(peer.uid)", "gate": "request"]))
        reply.send(.final(.refused(GateResult(gate: "request", passed: false, detail: why))))
        return 2
    }

    /// Reads, waits for the lock, re-checks, executes. `report` hears every phase (started, completed, …).
    public func execute(
        _ request: ExecRequest, caller: UInt32,
        report: @escaping @Sendable (ExecReply) -> Void
    ) async -> RollbackResult {
        let where_ = paths.resolved(instance: request.instance)
        func refuse(_ gate: String, _ why: String) -> RollbackResult {
            record(
                Event(
                    kind: .executorRequest, at: SystemTime.now(),
                    message:
                        "Executor refused incident \(request.incident) -> \(request.to) (uid \(caller)): \(gate): \(why).",
                    severity: .high, incident: request.incident, toVersion: request.to, decision: "refuse", reason: why,
                    extra: ["caller_uid": "\(caller)", "gate": gate]))
            return .refused(GateResult(gate: gate, passed: false, detail: why))
        }
        if let problem = ConfigPermissions.problem(path: where_.config) { return refuse("config", problem) }
        let thresholds: Thresholds
        switch ConfigFile.load(path: where_.config) {
        case let .success(loaded): thresholds = loaded.thresholds
        case let .failure(error): return refuse("config", error.description)
        }
        let executor = Executors.make(thresholds.rollback, stateDirectory: where_.executorState)

        // One rollback at a time. An earlier executor may still be finishing (its caller was killed and asked
        // again): wait for it, then read everything fresh.
        let lock: RollbackLock
        switch await Self.waitForLock(
            stateDirectory: where_.executorState, holder: "rollbackd execute incident \(request.incident)",
            timeout: lockWait)
        {
        case let .success(l): lock = l
        case let .failure(why): return refuse("lock", why)
        }
        var state: EngineState
        do {
            guard let s = try StateStore(directory: where_.daemonState).load() else {
                return refuse(
                    "order", "\(where_.daemonState)/state.json does not exist: the watchdog has decided nothing")
            }
            state = s
        } catch {
            return refuse("order", error.description)
        }
        // Fleet mode: a host carrying out a decision that stands after the fleet closed its incident has it in its
        // fleet record, marked standing; that order is the one to check.
        if let run = try? FleetHostRecord.load(stateDirectory: where_.daemonState)?.running, run.standing == true,
            run.incident == request.incident, run.to == request.to
        {
            state.activeRollback = run
        }
        var live: String?
        var liveReason: String?
        do { live = try await executor.currentVersion() } catch { liveReason = "\(error)" }
        let journaled: Bool
        do {
            if let j = try ExecutionRunner.journal(stateDirectory: where_.executorState) {
                journaled = j.plan.incident == request.incident && j.plan.to == request.to && j.status != .failed
            } else {
                journaled = false
            }
        } catch {
            return refuse("journal", error.description)
        }
        let now = SystemTime.now()
        let verdict = ExecutionCheck.check(
            ExecutionCheck.Request(incident: request.incident, to: request.to),
            config: thresholds, state: state, live: live, liveReason: liveReason,
            journaled: journaled, now: now)
        let order: RollbackOrder
        switch verdict {
        case let .refuse(gate): return refuse(gate.gate, gate.detail)
        case let .execute(o, gates):
            order = o
            record(
                Event(
                    kind: .executorRequest, at: now,
                    message:
                        "Executor accepted incident \(o.incident): \(o.from) -> \(o.to) (uid \(caller)); gates: \(gates.map(\.gate).joined(separator: ", ")).",
                    severity: .medium, incident: o.incident, trigger: o.trigger, fromVersion: o.from, toVersion: o.to,
                    decision: "execute", reason: gates.map { "\($0.gate): \($0.detail)" }.joined(separator: "; "),
                    extra: ["caller_uid": "\(caller)"]))
        }
        defer { lock.release() }
        let journal = self
        let relay = PhaseRelay { phase, progress, detail in
            journal.record(
                Event(
                    kind: .executorPhase, at: SystemTime.now(),
                    message:
                        "Executor: rollback \(order.from) -> \(order.to) phase \(phase) \(progress.rawValue): \(detail).",
                    severity: progress == .failed ? .critical : .low, incident: order.incident, trigger: order.trigger,
                    fromVersion: order.from, toVersion: order.to, reason: progress == .failed ? detail : nil,
                    extra: ["phase": phase, "phase_state": progress.rawValue].merging(
                        thresholds.rollback.stepFields(ofPhase: phase)
                    ) { a, _ in a }))
            report(.report(phase, progress, detail))
        }
        return await RollbackProcedure(
            thresholds: thresholds, executor: executor, stateDirectory: where_.executorState
        )
        .run(order, holding: lock, reporter: relay)
    }

    func record(_ event: Event) {
        _ = EventJournal(identifier: "rollbackd-exec", writer: journal).record(event)
    }

    enum LockWait: Sendable {
        case success(RollbackLock)
        case failure(String)
    }

    static func waitForLock(stateDirectory: String, holder: String, timeout: Interval) async -> LockWait {
        let deadline = SystemTime.monotonicMs() + timeout.milliseconds
        while true {
            do {
                return .success(try RollbackLock.acquire(stateDirectory: stateDirectory, holder: holder))
            } catch let .busy(busy) {
                if SystemTime.monotonicMs() >= deadline {
                    return .failure("\(busy.description), for more than \(timeout)")
                }
                try? await Task.sleep(for: .milliseconds(200))
            } catch {
                return .failure(error.description)
            }
        }
    }
}

/// Reply lines to the caller. A caller that went away is not an error: the rollback goes on, and each later write
/// fails quietly (MSG_NOSIGNAL: no SIGPIPE).
final class ReplyChannel: Sendable {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    func send(_ reply: ExecReply) {
        _ = UnixSocket.writeAll(fd, ExecWire.line(reply))
    }
}
