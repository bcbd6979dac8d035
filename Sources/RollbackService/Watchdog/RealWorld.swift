import RollbackCore
import RollbackSystem

/// Carries out one rollback order: lock, resume-or-plan, precheck, database gate, backup hook, then the phases
/// through the journaled runner. Every stop before the first phase changes nothing and is reported as a gate.
public enum RollbackJob {
    /// A journal of this very order is resumed when it is still running, or when it finished and the target is
    /// live (the caller crashed before it heard the result). A finished journal whose target is no longer live is
    /// history: the order is planned and gated anew.
    static func isResume(_ journal: ExecutionJournal, executor: any RollbackExecutor) async -> Bool {
        switch journal.status {
        case .running: return true
        case .finished: return (try? await executor.currentVersion()) == journal.plan.to
        case .failed: return false
        }
    }

    /// `held`: a lock the caller already took (the privileged executor waits for it before re-checking the gates);
    /// otherwise the job takes it without waiting. Either way it is released when the job ends.
    public static func run(_ order: RollbackOrder, config: RollbackConfig, executor: any RollbackExecutor,
                           stateDirectory: String, holding held: RollbackLock? = nil, now: @Sendable () -> Timestamp,
                           phase: @escaping @Sendable (String, PhaseProgress, String) async -> Void) async -> RollbackResult {
        let lock: RollbackLock
        if let held {
            lock = held
        } else {
            do {
                lock = try RollbackLock.acquire(stateDirectory: stateDirectory, holder: "rollbackd incident \(order.incident)")
            } catch {
                return .refused(GateResult(gate: "lock", passed: false, detail: "\(error)"))
            }
        }
        defer { lock.release() }
        let runner = ExecutionRunner(executor: executor, stateDirectory: stateDirectory)
        let plan: RollbackPlan
        let journal: ExecutionJournal?
        do { journal = try ExecutionRunner.journal(stateDirectory: stateDirectory) } catch {
            return .refused(GateResult(gate: "lock", passed: false, detail: error.description))
        }
        if let j = journal, j.plan.incident == order.incident, j.plan.to == order.to,
           await Self.isResume(j, executor: executor) {
            // Resuming after a crash (ours, or the caller's before it heard the result): the gates passed before
            // the first phase ran; completed phases are skipped, a finished plan runs nothing.
            plan = j.plan
        } else {
            plan = executor.plan(from: order.from, to: order.to, incident: order.incident)
            do {
                try await executor.precheck(target: order.to)
            } catch {
                return .refused(GateResult(gate: "precheck", passed: false, detail: "\(error)"))
            }
            do {
                if let check = try ReleaseMigrations.check(config, from: order.from, to: order.to) {
                    let gate = check.gate(compatible: config.migrationsCompatible)
                    if !gate.passed && order.automatic { return .demotedToApproval(gate.detail) }
                }
            } catch {
                return .refused(GateResult(gate: "database", passed: false, detail: error.description))
            }
            if let backup = config.backup {
                do {
                    let r = try await BackupHook.run(backup, at: now(), from: order.from, to: order.to,
                                                     incident: order.incident, timeout: config.phaseTimeout)
                    await phase("backup", .completed, "\(r.name) in \(ValueFormat.trim(r.seconds))s")
                } catch {
                    return .refused(GateResult(gate: "backup", passed: false, detail: error.description))
                }
            }
        }
        let outcome = await runner.execute(plan, holding: lock) { report in
            await phase(report.phase.name, report.state, report.text)
        }
        switch outcome.status {
        case .finished, .alreadyFinished: return .succeeded
        case let .failed(phase, message): return .failed("phase \(phase): \(message)")
        case let .refused(why): return .refused(GateResult(gate: "lock", passed: false, detail: why))
        case let .interrupted(phase): return .interrupted("stopped during phase \(phase); the journal resumes it")
        }
    }
}

/// Builds the real world for a configuration: libcurl sources, the strategy's executor, journald and webhooks.
public enum RealWorld {
    /// Who carries out a rollback: this process (it then needs the strategy's permissions: the demo, tests, a
    /// host without the executor units), or the privileged executor behind a socket (`rollbackd execute`).
    public enum ExecutorRoute: Sendable, Equatable {
        case inProcess
        case socket(path: String, instance: String?)
    }

    public static func make(_ config: Thresholds, stateDirectory: String, journal: JournalTarget = .automatic,
                            route: ExecutorRoute = .inProcess) throws -> DaemonWorld {
        let executor = Executors.make(config.rollback, stateDirectory: stateDirectory)
        let sampler = Sampler(thresholds: config, strategyVersion: { try await executor.currentVersion() })
        let notifier = EventNotifier(config: config.notify, service: config.service,
                                     spoolDirectory: EventNotifier.spoolDirectory(stateDirectory: stateDirectory),
                                     journalWriter: JournalWriter(target: journal))
        let reports = IncidentReportWriter(stateDirectory: stateDirectory)
        let started = Task { await notifier.start() }
        let smokeOptions = HTTPOptions()
        return DaemonWorld(
            sample: { now in await sampler.sample(now: now) },
            readVersion: { await sampler.readVersion() },
            deployable: {
                if let repo = config.rollback.gitTagsRepo, let tags = try? await GitTags.list(repo: repo) { return Set(tags) }
                guard let versions = try? await executor.availableVersions(), !versions.isEmpty else { return nil }
                return Set(versions)
            },
            notify: { event in
                await started.value
                await notifier.notify(event)
            },
            executeRollback: { order, phase in
                switch route {
                case .inProcess:
                    return await RollbackJob.run(order, config: config.rollback, executor: executor, stateDirectory: stateDirectory,
                                                 now: { SystemTime.now() }, phase: phase)
                case let .socket(path, instance):
                    return await ExecClient(socketPath: path, instance: instance).run(order, phase: phase)
                }
            },
            smoke: { urls in await ProbeSource.failures(of: urls, options: smokeOptions) },
            incidentChanged: { incident in
                notifier.incidentUpdated(incident)
                _ = await BlockingThread.run { try? reports.write(incident, thresholds: config) }
            },
            shutdown: {
                await started.value
                await notifier.stop()
            })
    }
}
