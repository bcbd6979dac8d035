import RollbackCore
import RollbackSystem

/// A drill that could not start (nothing was changed) or could not be recorded.
public struct DrillError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `rollbackd drill`: rehearses the configured rollback on a staging target. Holding the rollback lock throughout,
/// it rolls back from the live release to a target (precheck, database gate reported, backup hook, phases through
/// the journaled runner), verifies the way the daemon does (the configured metrics sampled every
/// `verifyInterval` for `verifyFor` through the engine's own trigger state machine; every `full` trigger must be
/// clear at the end, and every smoke URL must answer), then rolls forward to the original release, also when the
/// verification failed. The result goes to `<state dir>/drills.json`.
public enum Drill {
    public struct Options: Sendable {
        public var stateDirectory: String
        /// The release to roll back to (default: the most recent known-good one in the state directory's ledger).
        public var to: String?
        /// Overrides `safety.verifyFor`.
        public var verifyFor: Interval?

        public init(stateDirectory: String, to: String? = nil, verifyFor: Interval? = nil) {
            self.stateDirectory = stateDirectory
            self.to = to
            self.verifyFor = verifyFor
        }
    }

    /// Runs one drill; `say` hears one line per step. Throws only when the drill could not start (nothing was
    /// changed) or its record could not be written; every other ending is a record with an outcome.
    public static func run(_ config: Thresholds, options: Options, say: @escaping @Sendable (String) -> Void)
        async throws(DrillError) -> DrillRecord
    {
        let dir = options.stateDirectory
        let started = SystemTime.now()
        let id = "drill-\(started.compactUTC)"
        // A drill rolls forward by running the same steps toward the original release; a step not reversible that
        // way (a flag switched off would be switched off again) would leave production changed. Refuse, naming
        // it, before touching anything.
        if config.rollback.isPlan {
            for (i, step) in config.rollback.steps.enumerated() {
                guard let why = step.notRehearsable else { continue }
                throw DrillError(
                    "rollback.steps[\(i)], step \(step.label(index: i)), cannot be rehearsed: \(why); a drill would leave it changed. Drill a plan whose steps each deploy a release (symlink, systemd-unit, kubernetes, docker-swarm, nginx-blue-green, config, haproxy-canary with restore)"
                )
            }
        }
        // A drill must never interfere with a real rollback in the same state directory.
        let saved: EngineState?
        do { saved = try StateStore(directory: dir).load() } catch { throw DrillError(error.description) }
        if let a = saved?.activeRollback {
            throw DrillError(
                "a rollback is active in \(dir) (\(a.from) -> \(a.to), incident \(a.incident)); no drill while it runs")
        }
        if let v = saved?.verification {
            throw DrillError(
                "a rollback is being verified in \(dir) (\(v.from) -> \(v.to), incident \(v.incident)); no drill while it runs"
            )
        }
        do {
            if let p = try ExecutionRunner.pending(stateDirectory: dir) {
                throw DrillError(
                    "an interrupted rollback \(p.plan.from) -> \(p.plan.to) (incident \(p.plan.incident)) is pending in \(dir); resume or resolve it before drilling"
                )
            }
        } catch let e as DrillError { throw e } catch { throw DrillError("\(error)") }
        let lock: RollbackLock
        do { lock = try RollbackLock.acquire(stateDirectory: dir, holder: "rollbackd drill \(id)") } catch {
            throw DrillError(error.description)
        }
        defer { lock.release() }

        let executor = Executors.make(config.rollback, stateDirectory: dir)
        let from: String
        do { from = try await executor.currentVersion() } catch {
            throw DrillError("cannot tell the live release: \(error)")
        }
        let to: String
        if let t = options.to {
            to = t
        } else if let known = saved?.ledger.target(excluding: from, deployable: nil)?.version {
            to = known
        } else {
            throw DrillError("no known-good release other than \(from) in \(dir)/state.json: pass --to VERSION")
        }
        guard to != from else { throw DrillError("\(to) is already live: pass --to another release") }
        do { try await executor.precheck(target: from) } catch {
            throw DrillError("\(from) could not be rolled forward to after the drill: \(error)")
        }
        say("drill \(id): rolling back \(from) -> \(to) with the \(executor.strategyName) strategy, then forward again")
        let procedure = RollbackProcedure(thresholds: config, executor: executor, stateDirectory: dir)
        func record(_ outcome: DrillOutcome, recovery: Double?, rollback: Double?, forward: Bool, _ detail: String)
            throws(DrillError) -> DrillRecord
        {
            let r = DrillRecord(
                id: id, startedAt: started, finishedAt: SystemTime.now(), from: from, to: to,
                strategy: executor.strategyName, outcome: outcome, recoverySeconds: recovery,
                rollbackSeconds: rollback, rolledForward: forward, detail: detail)
            do { try DrillLog(stateDirectory: dir).append(r) } catch {
                throw DrillError("the drill ran but cannot be recorded: \(error)")
            }
            return r
        }
        func rollForward() async -> (ok: Bool, detail: String) {
            let live = try? await executor.currentVersion()
            if live == from { return (true, "\(from) is live") }
            let order = RollbackOrder(
                incident: id + "-forward", from: live ?? to, to: from, automatic: false,
                orderedAt: SystemTime.now())
            let result = await procedure.run(
                order, holding: lock, preflight: false, reporter: DrillReporter(say: say, prefix: "  forward "))
            let now = try? await executor.currentVersion()
            if result == .succeeded && now == from { return (true, "rolled forward to \(from)") }
            return (
                false,
                "rolling forward to \(from) failed: \(DrillReporter.summary(result, order)); live: \(now ?? "unknown")"
            )
        }

        // 1. Roll back through the one rollback procedure: precheck, database gate, backup hook, phases.
        let t0 = SystemTime.monotonicMs()
        let back = RollbackOrder(incident: id, from: from, to: to, automatic: false, orderedAt: started)
        let result = await procedure.run(back, holding: lock, reporter: DrillReporter(say: say, prefix: "  "))
        let rollbackSeconds = Double(SystemTime.monotonicMs() - t0) / 1000
        switch result {
        case .succeeded: break
        case let .refused(gate) where gate.gate == "backup":
            return try record(
                .rollbackFailed, recovery: nil, rollback: nil, forward: true,
                "backup hook: \(gate.detail); nothing was changed")
        case let .refused(gate) where gate.gate == "precheck":
            throw DrillError("precheck of \(to) failed: \(gate.detail)")
        case let .refused(gate) where gate.gate == "database":
            throw DrillError("database gate: \(gate.detail)")
        default:
            let forward = await rollForward()
            let summary = DrillReporter.summary(result, back)
            say("rollback failed: \(summary); \(forward.detail)")
            return try record(
                .rollbackFailed, recovery: nil, rollback: nil, forward: forward.ok, "\(summary); \(forward.detail)")
        }

        // 2. Verify as the daemon would.
        let verdict = await verify(
            config, executor: executor, target: to, verifyFor: options.verifyFor ?? config.safety.verifyFor, say: say)
        let recovery = Double(SystemTime.monotonicMs() - t0) / 1000

        // 3. Roll forward, whatever the verification said.
        if verdict != nil { say("verification failed: \(verdict ?? ""); rolling forward to \(from) anyway") }
        let forward = await rollForward()
        say(forward.detail)
        guard forward.ok else {
            return try record(
                .rollForwardFailed, recovery: verdict == nil ? recovery : nil, rollback: rollbackSeconds,
                forward: false, (verdict.map { "verification failed: \($0); " } ?? "verified; ") + forward.detail)
        }
        if let verdict {
            return try record(.verificationFailed, recovery: nil, rollback: rollbackSeconds, forward: true, verdict)
        }
        return try record(
            .verified, recovery: recovery, rollback: rollbackSeconds, forward: true,
            "verified \(to) for \(options.verifyFor ?? config.safety.verifyFor); rolled forward to \(from)")
    }

    /// Samples for `verifyFor`; nil when every `full` trigger is clear at the end, the target is live and every
    /// smoke URL answered; otherwise why not.
    static func verify(
        _ config: Thresholds, executor: any RollbackExecutor, target: String, verifyFor: Interval,
        say: @Sendable (String) -> Void
    ) async -> String? {
        let verdict = await TriggerWatch.watch(
            config, senses: RealWorld.senses(config, executor: executor), for: verifyFor, stopOnFiring: false,
            say: { say("  verify " + $0) })
        let lastVersion = verdict.lastVersion
        var problems: [String] = []
        if lastVersion != target {
            problems.append("the live release reads as \(lastVersion ?? "unknown"), not \(target)")
        }
        problems += verdict.problems
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
}

/// The procedure's progress as drill lines.
struct DrillReporter: RollbackReporter {
    let say: @Sendable (String) -> Void
    let prefix: String

    func checked(_ gate: GateResult) async {
        if gate.gate == "database" { say("database: \(gate.detail)") }
    }

    func backedUp(_ backup: BackupHook.Result) async {
        say("\(prefix)backup \(backup.name) in \(ValueFormat.trim(backup.seconds))s")
    }

    func phase(_ report: PhaseReport) async { say(prefix + report.text) }

    /// One line for a result that is not a success.
    static func summary(_ result: RollbackResult, _ order: RollbackOrder) -> String {
        let what = "rollback \(order.from) -> \(order.to)"
        switch result {
        case .succeeded: return "\(what) finished"
        case let .failed(why): return "\(what) failed at \(why)"
        case let .refused(gate): return "\(what) not started: \(gate.gate): \(gate.detail)"
        case let .demotedToApproval(why): return "\(what) needs a human: \(why)"
        case let .interrupted(why): return "\(what) interrupted: \(why)"
        case let .awaitingApproval(_, why): return "\(what) \(why)"
        }
    }
}
