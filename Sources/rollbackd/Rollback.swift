import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService
#if canImport(Glibc)
import Glibc
#endif

/// Options shared by the executor commands.
struct ExecutorOptions: ParsableArguments {
    @Option(name: .long, help: "The thresholds file.")
    var config: String = ConfigFile.defaultPath

    @Option(name: .long, help: "The release to roll back to.")
    var to: String

    @Option(name: .long, help: "The release live now (default: asked of the strategy).")
    var from: String?

    @Option(name: .long, help: "Incident id recorded in the plan (default: manual-<UTC time>).")
    var incident: String?

    func load() throws -> Thresholds { try loadConfigOrExit(config).thresholds }

    func fromVersion(_ executor: any RollbackExecutor) async throws -> String {
        if let from { return from }
        do {
            return try await executor.currentVersion()
        } catch {
            Terminal.writeError("cannot tell the live release: \(error) (pass --from)")
            throw ExitCode(1)
        }
    }

    var incidentID: String { incident ?? "manual-\(SystemTime.now().compactUTC)" }
}

enum StateDirectory {
    static var `default`: String { fromEnvironment ?? "/var/lib/rollbackd" }

    /// systemd's `$STATE_DIRECTORY`; it may name several, colon-separated: the first is ours.
    static var fromEnvironment: String? {
        guard let v = getenv("STATE_DIRECTORY") else { return nil }
        let s = String(cString: v).split(separator: ":").first.map(String.init) ?? ""
        return s.isEmpty ? nil : s
    }
}

/// `rollbackd plan --to VERSION`: prechecks the target and prints the plan. Changes nothing.
/// Exit statuses: 0 plan printed and precheck passed, 1 precheck failed or invalid configuration, 2 usage.
struct Plan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the rollback plan for a target release (a dry run: nothing is changed)."
    )

    @OptionGroup var options: ExecutorOptions

    func run() async throws {
        let procedure = RollbackProcedure(thresholds: try options.load(), stateDirectory: StateDirectory.default)
        let from = try await options.fromVersion(procedure.executor)
        print(procedure.dryRun(from: from, to: options.to, incident: options.incidentID))
        let precheck = await procedure.precheck(to: options.to)
        print(precheck.passed ? "precheck: passed" : "precheck: FAILED: \(precheck.detail)")
        var ok = precheck.passed
        switch procedure.databaseGate(from: from, to: options.to) {
        case .notConfigured: break
        case let .checked(gate): print("database: \(gate.detail)")
        case let .unreadable(why):
            print("database: FAILED: \(why)")
            ok = false
        }
        if !ok { throw ExitCode(1) }
    }
}

/// `rollbackd run-plan --to VERSION`: the rollback procedure without the decision engine — lock, precheck,
/// database check (reported), backup hook, then the plan phase by phase with the durable journal. A rollback
/// interrupted by a crash is resumed when run again with the same target. Hidden: `rollbackd rollback` is the
/// command for people; this one exists for tests and for finishing an interrupted plan by hand.
struct RunPlan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-plan",
        abstract: "Run (or resume) a rollback plan directly, without the decision engine.",
        shouldDisplay: false
    )

    @OptionGroup var options: ExecutorOptions

    @Option(name: .long, help: "State directory (default: $STATE_DIRECTORY or /var/lib/rollbackd).")
    var stateDir: String?

    @Flag(name: .long, help: "Print the plan and change nothing.")
    var dryRun = false

    func run() async throws {
        let state = stateDir ?? StateDirectory.default
        let procedure = RollbackProcedure(thresholds: try options.load(), stateDirectory: state)
        if dryRun {
            let from = try await options.fromVersion(procedure.executor)
            print(procedure.dryRun(from: from, to: options.to, incident: options.incidentID))
            return
        }
        // An interrupted run of this target (and of --from/--incident where given) is resumed, whatever incident
        // it was started under.
        let pending: ExecutionJournal?
        do { pending = try ExecutionRunner.pending(stateDirectory: state) } catch {
            Terminal.writeError(error.description)
            throw ExitCode(1)
        }
        let order: RollbackOrder
        if let p = pending, p.plan.to == options.to, options.from == nil || options.from == p.plan.from,
            options.incident == nil || options.incident == p.plan.incident
        {
            order = RollbackOrder(
                incident: p.plan.incident, from: p.plan.from, to: p.plan.to, automatic: false,
                orderedAt: SystemTime.now())
        } else {
            order = RollbackOrder(
                incident: options.incidentID, from: try await options.fromVersion(procedure.executor),
                to: options.to, automatic: false, orderedAt: SystemTime.now())
        }
        let result = await procedure.run(
            order, holder: "rollbackd run-plan --to \(options.to)", reporter: PrintingReporter())
        switch result {
        case .succeeded: return
        case .failed, .interrupted, .demotedToApproval, .awaitingApproval: throw ExitCode(1)
        case let .refused(gate):
            switch gate.gate {
            case "precheck": Terminal.writeError("precheck failed: \(gate.detail)")
            case "database": Terminal.writeError("database check failed: \(gate.detail)")
            default: Terminal.writeError(gate.detail)
            }
            throw ExitCode(1)
        }
    }
}

/// The rollback procedure's progress on standard output, for `rollbackd run-plan`.
struct PrintingReporter: RollbackReporter {
    func resuming(_ journal: ExecutionJournal) async {
        let after = journal.completed.last.map { "phase " + $0 } ?? "no completed phase"
        print(
            "resuming the interrupted rollback \(journal.plan.from) -> \(journal.plan.to) (incident \(journal.plan.incident)) after \(after)"
        )
    }

    func checked(_ gate: GateResult) async {
        if gate.gate == "database" { print("database: \(gate.detail)") }
    }

    func backedUp(_ backup: BackupHook.Result) async {
        print("backup \(backup.name): done in \(ValueFormat.trim(backup.seconds))s")
    }

    func starting(_ plan: RollbackPlan) async { print(plan.text) }

    func phase(_ report: PhaseReport) async { print(report.text) }

    func ended(_ outcome: ExecutionOutcome) async { print(outcome.summary) }
}
