import RollbackCore
import RollbackSystem

/// Builds the real world for a configuration: libcurl sources, the strategy's executor, journald and webhooks.
public enum RealWorld {
    /// Who carries out a rollback: this process (it then needs the strategy's permissions: the demo, tests, a
    /// host without the executor units), or the privileged executor behind a socket (`rollbackd execute`).
    public enum ExecutorRoute: Sendable, Equatable {
        case inProcess
        case socket(path: String, instance: String?)
    }

    public static func make(
        _ config: Thresholds, stateDirectory: String, journal: JournalTarget = .automatic,
        route: ExecutorRoute = .inProcess
    ) throws -> DaemonWorld {
        let executor = Executors.make(config.rollback, stateDirectory: stateDirectory)
        let senses = senses(config, executor: executor)
        let notifier = EventNotifier(
            config: config.notify, service: config.service,
            spoolDirectory: EventNotifier.spoolDirectory(stateDirectory: stateDirectory),
            journalWriter: JournalWriter(target: journal))
        let reports = IncidentReportWriter(stateDirectory: stateDirectory)
        let started = Task { await notifier.start() }
        return DaemonWorld(
            sample: senses.sample,
            readVersion: senses.readVersion,
            deployable: senses.deployable,
            notify: { event in
                await started.value
                await notifier.notify(event)
            },
            executeRollback: { order, phase in
                switch route {
                case .inProcess:
                    return await RollbackProcedure(
                        thresholds: config, executor: executor, stateDirectory: stateDirectory
                    )
                    .run(order, reporter: PhaseRelay(phase))
                case let .socket(path, instance):
                    return await ExecClient(socketPath: path, instance: instance).run(order, phase: phase)
                }
            },
            smoke: senses.smoke,
            incidentChart: { incident, svg in
                _ = await BlockingThread.run { try? reports.writeChart(incident, svg: svg) }
            },
            incidentChanged: { incident in
                notifier.incidentUpdated(incident)
                _ = await BlockingThread.run { try? reports.write(incident, thresholds: config) }
            },
            shutdown: {
                await started.value
                await notifier.stop()
            },
            webhookTelemetry: {
                let stats = await notifier.stats()
                return config.notify.webhooks.map { w in
                    let s = stats[w.name] ?? DeliveryStats()
                    return WebhookTelemetry(
                        name: w.name, pending: s.pending, oldestPendingAt: s.oldestPendingAt, delivered: s.delivered,
                        dropped: s.dropped, failedAttempts: s.failedAttempts)
                }
            })
    }

    /// The real senses for a configuration: its metric sources, the version its strategy reads, the releases it
    /// can deploy (git tags when configured) and HTTP smoke checks. The daemon's world and a drill's verification.
    public static func senses(_ config: Thresholds, executor: any RollbackExecutor) -> Senses {
        let sampler = Sampler(thresholds: config, strategyVersion: { try await executor.currentVersion() })
        let smokeOptions = HTTPOptions()
        return Senses(
            sample: { now in await sampler.sample(now: now) },
            readVersion: { await sampler.readVersion() },
            deployable: {
                if let repo = config.rollback.gitTagsRepo, let tags = try? await GitTags.list(repo: repo) {
                    return Set(tags)
                }
                guard let versions = try? await executor.availableVersions(), !versions.isEmpty else { return nil }
                return Set(versions)
            },
            smoke: { urls in await ProbeSource.failures(of: urls, options: smokeOptions) })
    }
}
