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
        let t = try options.load()
        let executor = Executors.make(t.rollback, stateDirectory: StateDirectory.default)
        let from = try await options.fromVersion(executor)
        let plan = executor.plan(from: from, to: options.to, incident: options.incidentID)
        print(ExecutionRunner(executor: executor, stateDirectory: StateDirectory.default).dryRun(plan))
        var ok = true
        do {
            try await executor.precheck(target: options.to)
            print("precheck: passed")
        } catch {
            print("precheck: FAILED: \(error)")
            ok = false
        }
        do {
            if let check = try ReleaseMigrations.check(t.rollback, from: from, to: options.to) {
                print("database: \(check.gate(compatible: t.rollback.migrationsCompatible).detail)")
            }
        } catch {
            print("database: FAILED: \(error)")
            ok = false
        }
        if !ok { throw ExitCode(1) }
    }
}

/// `rollbackd run-plan --to VERSION`: the executor path without the decision engine — lock, precheck, database
/// check (reported), backup hook, then the plan phase by phase with the durable journal. A rollback interrupted
/// by a crash is resumed when run again with the same target. Hidden: `rollbackd rollback` is the command for
/// people; this one exists for tests and for finishing an interrupted plan by hand.
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
        let t = try options.load()
        let state = stateDir ?? StateDirectory.default
        let executor = Executors.make(t.rollback, stateDirectory: state)
        let runner = ExecutionRunner(executor: executor, stateDirectory: state)

        if dryRun {
            let from = try await options.fromVersion(executor)
            print(runner.dryRun(executor.plan(from: from, to: options.to, incident: options.incidentID)))
            return
        }

        let lock: RollbackLock
        do {
            lock = try RollbackLock.acquire(stateDirectory: state, holder: "rollbackd run-plan --to \(options.to)")
        } catch {
            Terminal.writeError(error.description)
            throw ExitCode(1)
        }
        defer { lock.release() }

        let plan: RollbackPlan
        let pending: ExecutionJournal?
        do { pending = try ExecutionRunner.pending(stateDirectory: state) } catch {
            Terminal.writeError(error.description)
            throw ExitCode(1)
        }
        if let p = pending, p.plan.to == options.to, options.from == nil || options.from == p.plan.from,
           options.incident == nil || options.incident == p.plan.incident {
            print("resuming the interrupted rollback \(p.plan.from) -> \(p.plan.to) (incident \(p.plan.incident)) after \(p.completed.isEmpty ? "no completed phase" : "phase " + (p.completed.last ?? ""))")
            plan = p.plan
        } else {
            let from = try await options.fromVersion(executor)
            plan = executor.plan(from: from, to: options.to, incident: options.incidentID)
            do {
                try await executor.precheck(target: options.to)
            } catch {
                Terminal.writeError("precheck failed: \(error)")
                throw ExitCode(1)
            }
            do {
                if let check = try ReleaseMigrations.check(t.rollback, from: from, to: options.to) {
                    print("database: \(check.gate(compatible: t.rollback.migrationsCompatible).detail)")
                }
            } catch {
                Terminal.writeError("database check failed: \(error)")
                throw ExitCode(1)
            }
            if let backup = t.rollback.backup {
                do {
                    let r = try await BackupHook.run(backup, at: SystemTime.now(), from: from, to: options.to,
                                                     incident: plan.incident, timeout: t.rollback.phaseTimeout)
                    print("backup \(r.name): done in \(ValueFormat.trim(r.seconds))s")
                } catch {
                    Terminal.writeError(error.description)
                    throw ExitCode(1)
                }
            }
            print(plan.text)
        }
        let outcome = await runner.execute(plan, holding: lock) { report in
            print(report.text)
        }
        print(outcome.summary)
        if !outcome.succeeded { throw ExitCode(1) }
    }
}
