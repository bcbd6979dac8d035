import RollbackCore
import RollbackSystem

/// The one rollback procedure: lock, resume-or-plan, precheck, database gate, backup hook, then the phases through
/// the journaled runner. The daemon (in process), the privileged executor, `rollbackd run-plan`/`plan` and
/// `rollbackd drill` all run it; each shows its progress through a `RollbackReporter`. Every stop before the first
/// phase changes nothing and is reported as a gate.
public struct RollbackProcedure: Sendable {
    public let config: RollbackConfig
    public let executor: any RollbackExecutor
    public let stateDirectory: String
    /// The wall clock that names the backup (`pre-rollback-<UTC time>`).
    public var now: @Sendable () -> Timestamp

    public init(
        config: RollbackConfig, executor: any RollbackExecutor, stateDirectory: String,
        now: @escaping @Sendable () -> Timestamp = { SystemTime.now() }
    ) {
        self.config = config
        self.executor = executor
        self.stateDirectory = stateDirectory
        self.now = now
    }

    /// The procedure for a configuration: its strategy's executor, journaled in `stateDirectory`.
    public init(_ config: RollbackConfig, stateDirectory: String) {
        self.init(
            config: config, executor: Executors.make(config, stateDirectory: stateDirectory),
            stateDirectory: stateDirectory)
    }

    /// The procedure of a whole configuration: the holds of a restore schedule are watched by its triggers.
    public init(thresholds: Thresholds, executor: (any RollbackExecutor)? = nil, stateDirectory: String) {
        let executor = executor ?? Executors.make(thresholds.rollback, stateDirectory: stateDirectory)
        self.init(config: thresholds.rollback, executor: executor, stateDirectory: stateDirectory)
        watch = TriggerWatch.holds(thresholds, executor: executor)
    }

    /// Watches each hold of a restore schedule (nil: a plan with holds fails at its first hold).
    public var watch: ExecutionRunner.HoldWatch?

    var runner: ExecutionRunner {
        var r = ExecutionRunner(executor: executor, stateDirectory: stateDirectory)
        r.watch = watch
        return r
    }

    /// The plan for an order, as text for people, changing nothing.
    public func dryRun(from: String, to: String, incident: String) -> String {
        runner.dryRun(executor.plan(from: from, to: to, incident: incident))
    }

    // MARK: the checks before anything changes

    /// The strategy's own precheck of the target (the release exists, the backend answers, …).
    public func precheck(to: String) async -> GateResult {
        do {
            try await executor.precheck(target: to)
            return GateResult(gate: "precheck", passed: true, detail: "passed")
        } catch {
            return GateResult(gate: "precheck", passed: false, detail: "\(error)")
        }
    }

    /// The database gate (`rollback.migrationsDir`).
    public enum DatabaseGate: Sendable, Equatable {
        /// No migrations directory is configured.
        case notConfigured
        /// Compared; not passed means the target lacks migrations the live release has (a human must decide).
        case checked(GateResult)
        /// The directories could not be compared: nothing may run.
        case unreadable(String)
    }

    public func databaseGate(from: String, to: String) -> DatabaseGate {
        do {
            guard let check = try ReleaseMigrations.check(config, from: from, to: to) else { return .notConfigured }
            return .checked(check.gate(compatible: config.migrationsCompatible))
        } catch {
            return .unreadable(error.description)
        }
    }

    // MARK: running

    /// A journal of this very order is resumed when it is still running, or when it finished and the target is
    /// live (the caller crashed before it heard the result). A finished journal whose target is no longer live is
    /// history: the order is planned and gated anew.
    func isResume(_ journal: ExecutionJournal, of order: RollbackOrder) async -> Bool {
        guard journal.plan.incident == order.incident, journal.plan.to == order.to else { return false }
        switch journal.status {
        case .running: return true
        case .finished: return (try? await executor.currentVersion()) == journal.plan.to
        case .failed: return false
        }
    }

    /// Carries out `order`. `held`: a lock the caller already holds (the privileged executor waits for it before
    /// re-checking its gates; a drill holds it from its roll-back through its roll-forward) and keeps; otherwise
    /// the procedure takes the lock without waiting, naming `holder`, and releases it when it ends.
    /// `preflight: false` skips precheck, database gate and backup hook: only for a drill's roll-forward, which
    /// returns to the release that was live and was prechecked before the drill began.
    public func run(
        _ order: RollbackOrder, holding held: RollbackLock? = nil, holder: String? = nil,
        preflight: Bool = true, reporter: some RollbackReporter
    ) async -> RollbackResult {
        let lock: RollbackLock
        if let held {
            lock = held
        } else {
            do {
                lock = try RollbackLock.acquire(
                    stateDirectory: stateDirectory,
                    holder: holder ?? "rollbackd incident \(order.incident)")
            } catch {
                return .refused(GateResult(gate: "lock", passed: false, detail: "\(error)"))
            }
        }
        defer { if held == nil { lock.release() } }
        let journal: ExecutionJournal?
        do { journal = try ExecutionRunner.journal(stateDirectory: stateDirectory) } catch {
            return .refused(GateResult(gate: "lock", passed: false, detail: error.description))
        }
        let plan: RollbackPlan
        if let j = journal, await isResume(j, of: order) {
            // Resuming after a crash (ours, or the caller's before it heard the result): the gates passed before
            // the first phase ran; completed phases are skipped, a finished plan runs nothing.
            await reporter.resuming(j)
            plan = j.plan
        } else if !preflight {
            plan = executor.plan(from: order.from, to: order.to, incident: order.incident)
        } else {
            plan = executor.plan(from: order.from, to: order.to, incident: order.incident)
            let pre = await precheck(to: order.to)
            await reporter.checked(pre)
            guard pre.passed else { return .refused(pre) }
            switch databaseGate(from: order.from, to: order.to) {
            case .notConfigured: break
            case let .checked(gate):
                await reporter.checked(gate)
                if !gate.passed && order.automatic { return .demotedToApproval(gate.detail) }
            case let .unreadable(why):
                return .refused(GateResult(gate: "database", passed: false, detail: why))
            }
            if let hook = config.backup {
                do {
                    let r = try await BackupHook.run(
                        hook, at: now(), from: order.from, to: order.to,
                        incident: order.incident, timeout: config.phaseTimeout)
                    await reporter.backedUp(r)
                } catch {
                    return .refused(GateResult(gate: "backup", passed: false, detail: error.description))
                }
            }
            await reporter.starting(plan)
        }
        let outcome = await runner.execute(plan, holding: lock, approving: order.approvedStep) { report in
            await reporter.phase(report)
        }
        await reporter.ended(outcome)
        switch outcome.status {
        case .finished, .alreadyFinished: return .succeeded
        case let .failed(_, message) where !plan.steps.isEmpty: return .failed(message)
        case let .failed(phase, message): return .failed("phase \(phase): \(message)")
        case let .refused(why): return .refused(GateResult(gate: "lock", passed: false, detail: why))
        case let .interrupted(phase): return .interrupted("stopped during phase \(phase); the journal resumes it")
        case let .awaitingApproval(step, message): return .awaitingApproval(step: step, message)
        }
    }
}
