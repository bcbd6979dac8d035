#if canImport(Glibc)
import Glibc
#endif
import Logging
import RollbackCore

/// The durable record of one rollback's progress: `<state directory>/rollback-journal.json`, rewritten (temp +
/// fsync + rename) before the first phase and after every phase. After a crash the next run finds it `running`
/// and resumes after the last completed phase; a `finished` plan run again changes nothing.
public struct ExecutionJournal: Sendable, Equatable {
    public enum Status: String, Sendable, Equatable {
        /// Started and not ended: the process stopped (crash, kill, power) in the middle.
        case running
        case finished
        /// A phase failed; a new attempt of the same plan starts again from the first phase.
        case failed
    }

    public var plan: RollbackPlan
    public var status: Status
    /// Names of the phases completed, in order.
    public var completed: [String]
    public var failedPhase: String?
    public var error: String?
    public var startedAt: Timestamp
    public var updatedAt: Timestamp
    /// 1 for the first attempt of this plan, then 2, 3… after failures.
    public var attempt: Int
    /// Steps of a plan with `onFailure: continue` that failed (1-based): their remaining phases are not run.
    public var failedSteps: [Int] = []
    /// Why each of `failedSteps` failed, one line each.
    public var stepErrors: [String] = []
    /// Steps with `approval: true` a person approved (1-based): the plan does not stop before them again.
    public var approvedSteps: [Int] = []

    /// Same strategy, versions, incident and phase names: the same rollback.
    public func isSame(as other: RollbackPlan) -> Bool {
        plan.strategy == other.strategy && plan.from == other.from && plan.to == other.to
            && plan.incident == other.incident && plan.phases.map(\.name) == other.phases.map(\.name)
    }

    var json: JSONValue {
        .object([
            ("version", .number(1)),
            ("status", .string(status.rawValue)),
            ("strategy", .string(plan.strategy)),
            ("from", .string(plan.from)),
            ("to", .string(plan.to)),
            ("incident", .string(plan.incident)),
            (
                "phases",
                .array(
                    plan.phases.map { p in
                        .object(
                            [
                                ("name", .string(p.name)), ("description", .string(p.description)),
                                ("timeoutMs", .number(Double(p.timeout.milliseconds))),
                            ] + (p.step.map { [("step", .number(Double($0)))] } ?? [])
                                + (p.hold.map { [("holdMs", .number(Double($0.milliseconds)))] } ?? []))
                    })
            ),
            (
                "steps",
                .array(
                    plan.steps.map { s in
                        .object(
                            [
                                ("label", .string(s.label)), ("strategy", .string(s.strategy)),
                                ("onFailure", .string(s.onFailure)),
                            ] + (s.approval ? [("approval", .bool(true))] : []))
                    })
            ),
            ("failedSteps", .array(failedSteps.map { .number(Double($0)) })),
            ("stepErrors", .array(stepErrors.map { .string($0) })),
            ("approvedSteps", .array(approvedSteps.map { .number(Double($0)) })),
            ("completed", .array(completed.map { .string($0) })),
            ("failedPhase", failedPhase.map { .string($0) } ?? .null),
            ("error", error.map { .string($0) } ?? .null),
            ("startedAt", .number(Double(startedAt.millisecondsSinceEpoch))),
            ("updatedAt", .number(Double(updatedAt.millisecondsSinceEpoch))),
            ("attempt", .number(Double(attempt))),
        ])
    }

    static func parse(_ v: JSONValue) -> ExecutionJournal? {
        func str(_ k: String) -> String? { if case let .string(s)? = v[k] { return s }; return nil }
        func num(_ k: String) -> Double? { if case let .number(n)? = v[k] { return n }; return nil }
        guard let statusText = str("status"), let status = Status(rawValue: statusText),
            let strategy = str("strategy"), let from = str("from"), let to = str("to"),
            let incident = str("incident"), case let .array(phaseItems)? = v["phases"],
            case let .array(done)? = v["completed"],
            let started = num("startedAt"), let updated = num("updatedAt")
        else { return nil }
        var phases: [RollbackPhase] = []
        for item in phaseItems {
            guard case let .string(name)? = item["name"], case let .string(desc)? = item["description"],
                case let .number(ms)? = item["timeoutMs"]
            else { return nil }
            var step: Int?
            if case let .number(n)? = item["step"] { step = Int(n) }
            var hold: Interval?
            if case let .number(n)? = item["holdMs"] { hold = .ms(Int64(n)) }
            phases.append(
                RollbackPhase(name: name, description: desc, timeout: .ms(Int64(ms)), step: step, hold: hold))
        }
        var steps: [PlanStep] = []
        if case let .array(items)? = v["steps"] {
            for item in items {
                guard case let .string(label)? = item["label"], case let .string(strategy)? = item["strategy"],
                    case let .string(onFailure)? = item["onFailure"]
                else { return nil }
                var approval = false
                if case .bool(true)? = item["approval"] { approval = true }
                steps.append(PlanStep(label: label, strategy: strategy, onFailure: onFailure, approval: approval))
            }
        }
        var failedSteps: [Int] = []
        if case let .array(items)? = v["failedSteps"] {
            for case let .number(n) in items { failedSteps.append(Int(n)) }
        }
        var stepErrors: [String] = []
        if case let .array(items)? = v["stepErrors"] {
            for case let .string(e) in items { stepErrors.append(e) }
        }
        var approvedSteps: [Int] = []
        if case let .array(items)? = v["approvedSteps"] {
            for case let .number(n) in items { approvedSteps.append(Int(n)) }
        }
        let completed = done.compactMap { item -> String? in
            if case let .string(s) = item { return s }; return nil
        }
        return ExecutionJournal(
            plan: RollbackPlan(
                strategy: strategy, from: from, to: to, incident: incident, phases: phases, steps: steps),
            status: status, completed: completed, failedPhase: str("failedPhase"), error: str("error"),
            startedAt: Timestamp(millisecondsSinceEpoch: Int64(started)),
            updatedAt: Timestamp(millisecondsSinceEpoch: Int64(updated)),
            attempt: Int(num("attempt") ?? 1), failedSteps: failedSteps, stepErrors: stepErrors,
            approvedSteps: approvedSteps)
    }
}

/// What happened to one phase, reported as it happens (for `rollback_phase` events and the CLI).
public struct PhaseReport: Sendable, Equatable {
    /// started, completed, skipped (completed by an earlier, interrupted run; not run again), failed.
    public typealias State = PhaseProgress
    public var phase: RollbackPhase
    /// 1-based position in the plan.
    public var index: Int
    public var count: Int
    public var state: State
    public var seconds: Double?
    public var message: String?

    /// `phase 2/3 reload: completed in 0.12s`.
    public var text: String {
        var s = "phase \(index)/\(count) \(phase.name): \(state.rawValue)"
        if let seconds { s += " in \(ValueFormat.trim(seconds))s" }
        if let message { s += ": \(message)" }
        return s
    }

    /// The `rollback_phase` event for this report.
    public func event(plan: RollbackPlan, at: Timestamp) -> Event {
        Event(
            kind: .rollbackPhase, at: at,
            message: "rollback \(plan.from) -> \(plan.to): \(text)",
            severity: state == .failed ? .high : .low, incident: plan.incident,
            fromVersion: plan.from, toVersion: plan.to,
            reason: state == .failed ? message : nil,
            extra: [
                "phase": phase.name, "phase_state": state.rawValue, "phase_index": String(index),
                "strategy": plan.step(of: phase)?.strategy ?? plan.strategy,
            ].merging(phase.step.map { ["step": String($0)] } ?? [:]) { a, _ in a })
    }
}

/// How a run of a plan ended.
public struct ExecutionOutcome: Sendable, Equatable {
    public enum Status: Sendable, Equatable {
        /// Every phase completed (some possibly in an earlier, interrupted run).
        case finished
        /// The same plan had already finished: nothing was run.
        case alreadyFinished
        /// Halted at the first failed phase; the journal says so.
        case failed(phase: String, message: String)
        /// Nothing was run (lock not held, another interrupted rollback pending, the journal unreadable).
        case refused(String)
        /// The task was cancelled between or during phases; the journal stays `running` so a re-run resumes.
        case interrupted(phase: String)
        /// Stopped before a step with `approval: true` (1-based); the journal stays `running`, and a run with that
        /// step approved goes on from there.
        case awaitingApproval(step: Int, message: String)
    }
    public var plan: RollbackPlan
    public var status: Status
    public var reports: [PhaseReport]
    /// Steps with `onFailure: continue` that failed while the plan went on, one line each.
    public var stepFailures: [String] = []
    public var succeeded: Bool {
        switch status {
        case .finished, .alreadyFinished: return true
        default: return false
        }
    }
    /// One line for people.
    public var summary: String {
        switch status {
        case .finished where !stepFailures.isEmpty:
            return "rollback \(plan.from) -> \(plan.to) finished, but best-effort "
                + (stepFailures.count == 1 ? "step " : "steps ") + stepFailures.joined(separator: "; ")
        case .finished: return "rollback \(plan.from) -> \(plan.to) finished"
        case .alreadyFinished: return "rollback \(plan.from) -> \(plan.to) had already finished; nothing was run again"
        case let .failed(_, message) where !plan.steps.isEmpty:
            return "rollback \(plan.from) -> \(plan.to) failed at \(message)"
        case let .failed(phase, message):
            return "rollback \(plan.from) -> \(plan.to) failed at phase \(phase): \(message)"
        case let .refused(why): return "rollback \(plan.from) -> \(plan.to) not started: \(why)"
        case let .interrupted(phase): return "rollback \(plan.from) -> \(plan.to) interrupted during phase \(phase)"
        case let .awaitingApproval(_, message): return "rollback \(plan.from) -> \(plan.to) \(message)"
        }
    }
}

/// Runs a plan phase by phase: each phase under its timeout, halting at the first failure, recording every
/// completed phase durably so that a re-run after a crash resumes and never applies a completed phase twice.
public struct ExecutionRunner: Sendable {
    public static let journalFile = "rollback-journal.json"

    public let executor: any RollbackExecutor
    public let stateDirectory: String
    let clock: any WallClock
    /// A phase's own commands stop at its timeout; the runner gives up on the phase this much later.
    public var grace: Interval = .seconds(2)
    /// Watches the triggers during a hold of a `restore` schedule for `duration`: nil when none fired, otherwise
    /// why (naming the triggers). A plan with holds and no watch fails at its first hold.
    public typealias HoldWatch = @Sendable (_ hold: RollbackPhase, _ duration: Interval) async -> String?
    public var watch: HoldWatch?

    public init(executor: any RollbackExecutor, stateDirectory: String, clock: (any WallClock)? = nil) {
        self.executor = executor
        self.stateDirectory = stateDirectory
        self.clock = clock ?? SystemTime()
    }

    public var journalPath: String { Self.journalPath(stateDirectory) }
    static func journalPath(_ dir: String) -> String { dir + "/" + journalFile }

    /// The plan as text. Changes nothing: no phase runs, no journal is written, no lock is taken.
    public func dryRun(_ plan: RollbackPlan) -> String {
        plan.text + "\n(dry run: nothing was changed)"
    }

    public enum JournalError: Error, Sendable, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        public var description: String {
            switch self {
            case let .unreadable(path, reason): return "\(path): \(reason); inspect it, then remove it to start over"
            }
        }
    }

    /// The journal in the state directory, if any.
    public static func journal(stateDirectory: String) throws(JournalError) -> ExecutionJournal? {
        let path = journalPath(stateDirectory)
        guard FileIO.exists(path) else { return nil }
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes: try FileIO.readAll(path: path, limit: 1 << 20))
        } catch {
            throw .unreadable(path: path, reason: "cannot read the rollback journal: \(error)")
        }
        guard let j = ExecutionJournal.parse(value) else {
            throw .unreadable(path: path, reason: "not a rollback journal")
        }
        return j
    }

    /// An interrupted rollback (journal `running`) that a restart should resume before anything else.
    public static func pending(stateDirectory: String) throws(JournalError) -> ExecutionJournal? {
        guard let j = try journal(stateDirectory: stateDirectory), j.status == .running else { return nil }
        return j
    }

    /// Forgets an interrupted rollback (a human decided to handle it). Needs the lock.
    public static func discardPending(stateDirectory: String, holding lock: RollbackLock) -> Bool {
        guard lock.isHeld else { return false }
        return unlink(journalPath(stateDirectory)) == 0
    }

    private func write(_ j: ExecutionJournal) throws(SystemError) {
        try FileIO.makeDirectories(stateDirectory, mode: 0o750)
        try FileIO.writeAtomically(path: journalPath, bytes: Array((j.json.serialized + "\n").utf8), mode: 0o640)
    }

    private static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private enum Race: Sendable {
        case done
        case failed(String)
        case timedOut
        case cancelled
    }

    /// Runs `plan` (or resumes it after a crash). The caller holds the rollback lock from its gates through
    /// verification. `progress` hears every phase as it starts and ends.
    /// `approving`: the step (1-based) a person approved; the plan stops before any other unapproved step with
    /// `approval: true`.
    public func execute(
        _ plan: RollbackPlan, holding lock: RollbackLock, approving: Int? = nil,
        progress: @Sendable (PhaseReport) async -> Void = { _ in }
    ) async -> ExecutionOutcome {
        var reports: [PhaseReport] = []
        func refuse(_ why: String) -> ExecutionOutcome {
            ExecutionOutcome(plan: plan, status: .refused(why), reports: [])
        }
        guard lock.isHeld else { return refuse("the rollback lock is not held") }
        guard !plan.phases.isEmpty else { return refuse("the plan has no phases") }
        guard Set(plan.phases.map(\.name)).count == plan.phases.count else {
            return refuse("the plan repeats a phase name")
        }

        let existing: ExecutionJournal?
        do { existing = try Self.journal(stateDirectory: stateDirectory) } catch { return refuse(error.description) }

        let now = clock.now()
        var journal: ExecutionJournal
        switch existing {
        case let j? where j.isSame(as: plan) && j.status == .finished:
            for (i, p) in plan.phases.enumerated() {
                let r = PhaseReport(
                    phase: p, index: i + 1, count: plan.phases.count, state: .skipped, message: "already completed")
                reports.append(r)
                await progress(r)
            }
            return ExecutionOutcome(plan: plan, status: .alreadyFinished, reports: reports)
        case let j? where j.isSame(as: plan) && j.status == .running:
            journal = j
            journal.updatedAt = now
        case let j? where j.status == .running:
            let at = j.completed.last.map { "after phase \($0)" } ?? "before its first phase completed"
            return refuse(
                "an interrupted rollback \(j.plan.from) -> \(j.plan.to) (incident \(j.plan.incident), strategy \(j.plan.strategy)) stopped \(at); resume it first, or remove \(journalPath) once a human has checked the service"
            )
        case let j?:
            let attempt = j.isSame(as: plan) ? j.attempt + 1 : 1
            journal = ExecutionJournal(
                plan: plan, status: .running, completed: [], startedAt: now, updatedAt: now, attempt: attempt)
            SavedCopies.discard(stateDirectory: stateDirectory, plan: plan)
        case nil:
            journal = ExecutionJournal(
                plan: plan, status: .running, completed: [], startedAt: now, updatedAt: now, attempt: 1)
            SavedCopies.discard(stateDirectory: stateDirectory, plan: plan)
        }
        do { try write(journal) } catch { return refuse("cannot record progress: \(error.description)") }

        let count = plan.phases.count
        for (i, phase) in plan.phases.enumerated() {
            if journal.completed.contains(phase.name) {
                let r = PhaseReport(
                    phase: phase, index: i + 1, count: count, state: .skipped,
                    message: "completed before an interruption; not run again")
                reports.append(r)
                await progress(r)
                continue
            }
            if let n = phase.step, journal.failedSteps.contains(n) {
                let r = PhaseReport(
                    phase: phase, index: i + 1, count: count, state: .skipped,
                    message: "step \(plan.step(of: phase)?.label ?? String(n)) failed (onFailure continue); not run")
                reports.append(r)
                await progress(r)
                continue
            }
            if let n = phase.step, let step = plan.step(of: phase), step.approval, !journal.approvedSteps.contains(n) {
                guard approving == n else {
                    journal.updatedAt = clock.now()
                    do { try write(journal) } catch {
                        return ExecutionOutcome(
                            plan: plan, status: .refused("cannot record progress: \(error.description)"),
                            reports: reports)
                    }
                    return ExecutionOutcome(
                        plan: plan,
                        status: .awaitingApproval(step: n, message: Self.approvalWait(journal, step: n)),
                        reports: reports)
                }
                journal.approvedSteps.append(n)
                journal.updatedAt = clock.now()
                do { try write(journal) } catch { return refuse("cannot record progress: \(error.description)") }
            }
            let startReport = PhaseReport(
                phase: phase, index: i + 1, count: count, state: .started, message: phase.description)
            reports.append(startReport)
            await progress(startReport)
            let started = Self.monotonicSeconds()
            let executor = self.executor
            let watch = self.watch
            let limit = phase.timeout + grace
            let race: Race = await withTaskGroup(of: Race.self) { group in
                group.addTask {
                    do {
                        try await Self.perform(phase, of: plan, executor: executor, watch: watch)
                        return .done
                    } catch is CancellationError {
                        return .cancelled
                    } catch {
                        return .failed("\(error)")
                    }
                }
                group.addTask {
                    do {
                        try await Task.sleep(for: .milliseconds(limit.milliseconds))
                        return .timedOut
                    } catch {
                        return .cancelled
                    }
                }
                let first = await group.next() ?? .cancelled
                group.cancelAll()
                // The phase's own commands are bounded by the same timeout: wait for it to end before going on.
                while await group.next() != nil {}
                return first
            }
            let seconds = Self.monotonicSeconds() - started
            let failure: String
            switch race {
            case .done:
                journal.completed.append(phase.name)
                journal.updatedAt = clock.now()
                do {
                    try write(journal)
                    let r = PhaseReport(phase: phase, index: i + 1, count: count, state: .completed, seconds: seconds)
                    reports.append(r)
                    await progress(r)
                    continue
                } catch {
                    journal.completed.removeLast()
                    failure = "the phase completed but its completion could not be recorded: \(error.description)"
                }
            case let .failed(message):
                failure = message
            case .timedOut:
                failure = "did not finish within \(phase.timeout)"
            case .cancelled:
                let r = PhaseReport(
                    phase: phase, index: i + 1, count: count, state: .failed, seconds: seconds,
                    message: "interrupted (the journal stays open; a re-run resumes here)")
                reports.append(r)
                await progress(r)
                return ExecutionOutcome(plan: plan, status: .interrupted(phase: phase.name), reports: reports)
            }
            if let n = phase.step, let step = plan.step(of: phase), step.continues {
                // A best-effort step: say so, skip its other phases, go on with the next step.
                let line = "\(step.label) failed at phase \(phase.name): \(failure)"
                journal.failedSteps.append(n)
                journal.stepErrors.append(line)
                journal.updatedAt = clock.now()
                try? write(journal)
                let r = PhaseReport(
                    phase: phase, index: i + 1, count: count, state: .failed, seconds: seconds,
                    message: failure + " (step \(step.label) is onFailure continue: the plan goes on)")
                reports.append(r)
                await progress(r)
                continue
            }
            let outcome = fail(&journal, phase: phase, index: i, message: failure, seconds: seconds, reports: &reports)
            await progress(reports[reports.count - 1])
            return outcome
        }
        journal.status = .finished
        journal.updatedAt = clock.now()
        do {
            try write(journal)
        } catch {
            // Every phase ran; only the final mark is missing, and a re-run would skip every phase anyway.
            Logger(label: "rollbackd.executor").warning("cannot mark \(journalPath) finished: \(error.description)")
        }
        return ExecutionOutcome(
            plan: plan, status: .finished, reports: reports, stepFailures: journal.stepErrors)
    }

    /// Runs one phase: through the executor, or for a hold of a restore schedule by watching the triggers; a
    /// trigger firing during the hold stops the ramp, drains again and fails the phase naming the stage.
    static func perform(
        _ phase: RollbackPhase, of plan: RollbackPlan, executor: any RollbackExecutor, watch: HoldWatch?
    ) async throws {
        guard let hold = phase.hold else { return try await executor.run(phase: phase, of: plan) }
        let strategy = plan.step(of: phase)?.strategy ?? executor.strategyName
        guard let watch else {
            throw ExecutorError(strategy, "no triggers watch hold \(phase.name) (\(phase.description))")
        }
        let problem = await watch(phase, hold)
        // A hold cut short (rollbackd stopping) proved nothing: the phase stays open and a re-run holds again.
        try Task.checkCancellation()
        guard let problem else { return }
        let drained: String
        do { drained = try await executor.drainAgain(after: phase, of: plan) } catch {
            throw ExecutorError(strategy, "\(problem); the ramp stopped, but draining again failed: \(error)")
        }
        throw ExecutorError(strategy, "\(problem); the ramp stopped and \(drained)")
    }

    /// `stopped before step 3/3 "db" (command), which waits for rollbackd approve; steps run before it: …`.
    static func approvalWait(_ journal: ExecutionJournal, step n: Int) -> String {
        let plan = journal.plan
        let before = plan.steps.prefix(n - 1).enumerated().map { j, s in
            s.label + (journal.failedSteps.contains(j + 1) ? " failed (onFailure continue)" : " completed")
        }
        return
            "stopped before step \(n)/\(plan.steps.count) \(plan.steps[n - 1].label.drop { $0 != " " }.dropFirst()), which waits for rollbackd approve; steps run before it: "
            + (before.isEmpty ? "none" : before.joined(separator: ", "))
    }

    /// For a plan of steps: which step failed at which phase, what the steps before it did and which did not run,
    /// so that an operator knows what state the system is in.
    static func stepFailure(_ journal: ExecutionJournal, phase: RollbackPhase, message: String) -> String {
        let plan = journal.plan
        guard let n = phase.step, let step = plan.step(of: phase) else { return message }
        var text =
            "step \(n)/\(plan.steps.count) \(step.label.drop { $0 != " " }.dropFirst()), phase \(phase.name): \(message)"
        // The steps before it, and any later step that ran already (a restore schedule runs after every step).
        let ran = Set(plan.phases.filter { journal.completed.contains($0.name) }.compactMap(\.step))
            .union(journal.failedSteps)
        let before = plan.steps.enumerated().filter { j, _ in j + 1 != n && (j + 1 < n || ran.contains(j + 1)) }
            .map { j, s in
                s.label + (journal.failedSteps.contains(j + 1) ? " failed (onFailure continue)" : " completed")
            }
        text += "; steps run before it: " + (before.isEmpty ? "none" : before.joined(separator: ", "))
        let after = plan.steps.enumerated().filter { j, _ in j + 1 > n && !ran.contains(j + 1) }.map(\.element.label)
        if !after.isEmpty { text += "; not run: " + after.joined(separator: ", ") }
        return text
    }

    private func fail(
        _ journal: inout ExecutionJournal, phase: RollbackPhase, index: Int, message: String, seconds: Double,
        reports: inout [PhaseReport]
    ) -> ExecutionOutcome {
        let plan = journal.plan
        let message = Self.stepFailure(journal, phase: phase, message: message)
        journal.status = .failed
        journal.failedPhase = phase.name
        journal.error = message
        journal.updatedAt = clock.now()
        try? write(journal)
        reports.append(
            PhaseReport(
                phase: phase, index: index + 1, count: plan.phases.count, state: .failed,
                seconds: seconds, message: message))
        return ExecutionOutcome(plan: plan, status: .failed(phase: phase.name, message: message), reports: reports)
    }
}
