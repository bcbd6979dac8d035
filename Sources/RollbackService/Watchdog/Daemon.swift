#if canImport(Glibc)
import Glibc
#endif
import Logging
import RollbackCore
import RollbackSystem
import RollbackVersion

public typealias WorldFactory = @Sendable (_ config: Thresholds, _ stateDirectory: String) throws -> DaemonWorld

public struct DaemonOptions: Sendable {
    public var configPath: String
    public var stateDirectory: String
    /// Test-only: stop completing ticks after this many (the systemd watchdog must then restart us).
    public var hangAfterTicks: Int?
    /// Refuse config files writable by group/others or owned by someone other than root or us.
    public var checkConfigPermissions: Bool
    /// The wall clock that stamps observations, events and commands (a test drives a fake one through `tickOnce()`).
    public var clock: any WallClock

    public init(
        configPath: String, stateDirectory: String, hangAfterTicks: Int? = nil, checkConfigPermissions: Bool = true,
        clock: any WallClock = SystemTime()
    ) {
        self.configPath = configPath
        self.stateDirectory = stateDirectory
        self.hangAfterTicks = hangAfterTicks
        self.checkConfigPermissions = checkConfigPermissions
        self.clock = clock
    }
}

public struct DaemonStartError: Error, CustomStringConvertible {
    public var description: String
}

/// The run loop: ticks on the monotonic clock, never overlapping; evaluates, acts, reports, persists.
public actor Daemon {
    public let options: DaemonOptions
    var engine: Engine
    var world: DaemonWorld
    let makeWorld: WorldFactory
    private let store: StateStore
    let systemd = SystemdNotify()
    /// General logs (not decisions: those are events): journald through `RollbackLogging.bootstrap`.
    let log = Logger(label: "rollbackd.watchdog")
    var configStamp: FileStamp?
    var rollbackTask: Task<Void, Never>?
    private var ticks = 0
    private var lastTickMs: Int64 = 0
    private var stopRequested = false
    private var lastSavedState: EngineState?
    private var lastSavedAt: Timestamp?
    private static let observationSaveEvery = Interval.seconds(5)
    private var lastSamples: [String: SampleValue] = [:]
    private var counters = TelemetryCounters()
    /// Every metric's recent samples (bounded), for the incident charts; in `samples.json`, written at most every
    /// `samplesSaveEvery` and on stop.
    private var history = SampleHistory()
    private var historySavedAt: Timestamp?
    private static let samplesSaveEvery = Interval.seconds(30)
    private var lastWebhooks: [WebhookTelemetry] = []
    /// What `/metrics` shows: replaced after each tick, command and rollback report.
    public nonisolated let telemetry: TelemetryBoard
    /// Serves `telemetry` when the configuration has `telemetry.listen`.
    var metricsServer: MetricsServer?
    /// Fleet mode (`fleet` in the configuration): this host's part in the fleet's decisions.
    let fleet: FleetMember?
    var fleetStanding: FleetStanding?
    /// A fleet tick is waiting on etcd: a command waits for it, so that the engine the tick hands back never
    /// overwrites what the command changed.
    var fleetTicking = false

    /// Loads the configuration and the saved state; throws (with the file named) when either is unusable.
    public init(options: DaemonOptions, makeWorld: @escaping WorldFactory) throws {
        self.options = options
        self.makeWorld = makeWorld
        self.store = StateStore(directory: options.stateDirectory)
        let loaded = try Self.loadConfig(options)
        let saved: EngineState?
        do { saved = try store.load() } catch { throw DaemonStartError(description: error.description) }
        self.engine = Engine(config: loaded.thresholds, state: saved ?? EngineState())
        switch store.loadSamples() {
        case let .success(samples?): history = samples
        case .success(nil): break
        case let .failure(e): log.warning("starting a new sample history for incident charts: \(e)")
        }
        do {
            self.world = try makeWorld(loaded.thresholds, options.stateDirectory)
        } catch {
            throw DaemonStartError(description: "\(options.configPath): \(error)")
        }
        if let f = loaded.thresholds.fleet {
            do {
                self.fleet = try FleetMember(
                    config: f, host: f.host ?? WebhookPayload.hostName(), stateDirectory: options.stateDirectory,
                    interval: loaded.thresholds.interval)
            } catch { throw DaemonStartError(description: error.description) }
        } else {
            self.fleet = nil
        }
        self.configStamp = FileStamp(path: options.configPath)
        self.startupWarnings = loaded.warningLines
        let board = TelemetryBoard(
            TelemetrySnapshot(
                config: loaded.thresholds, state: engine.state, samples: [:], counters: TelemetryCounters(),
                webhooks: [], startedAt: options.clock.now()))
        self.telemetry = board
        if let t = loaded.thresholds.telemetry {
            do {
                self.metricsServer = try MetricsServer(listen: t.listen, page: { board.page() })
            } catch {
                throw DaemonStartError(description: "\(options.configPath): \(error)")
            }
        }
    }

    private let startupWarnings: [String]

    static func loadConfig(_ options: DaemonOptions) throws -> LoadedThresholds {
        if options.checkConfigPermissions, let problem = ConfigPermissions.problem(path: options.configPath) {
            throw DaemonStartError(description: problem)
        }
        switch ConfigFile.load(path: options.configPath) {
        case let .success(l): return l
        case let .failure(e): throw DaemonStartError(description: e.description)
        }
    }

    // MARK: the loop

    /// Runs until SIGTERM/SIGINT (or `stop()`); SIGHUP reloads.
    public func run(signals: AsyncStream<Int32>?) async {
        await emit(
            Event(
                kind: .configLoaded, at: options.clock.now(),
                message:
                    "rollbackd started for \(engine.config.service) with \(options.configPath): \(engine.config.triggers.count) triggers, interval \(engine.config.interval).",
                severity: .low, reason: startupWarnings.isEmpty ? nil : startupWarnings.joined(separator: "; "),
                extra: ["version": RollbackVersion.current]))
        // A rollback that was running when we died resumes first: its phases are idempotent and journaled.
        // (In fleet mode this host's own run resumes from its fleet record on the first tick instead.)
        if fleet == nil, let order = engine.state.activeRollback {
            await emit(
                Event(
                    kind: .rollbackPhase, at: options.clock.now(),
                    message:
                        "Resuming rollback \(order.from) -> \(order.to) (incident \(order.incident)) after a restart.",
                    severity: .high, incident: order.incident, fromVersion: order.from, toVersion: order.to,
                    extra: ["phase": "resume"]))
            startRollback(order)
        }
        if let signals {
            let daemon = self
            Task {
                for await sig in signals {
                    if sig == SIGHUP { await daemon.reload(reason: "SIGHUP") } else { await daemon.stop(); return }
                }
            }
        }
        metricsServer?.start()
        await tickOnce()
        systemd.ready(status: statusLine())
        var schedule = TickSchedule(startingAfter: engine.config.interval)
        while !stopRequested {
            // Sleep in short slices: a stop (SIGTERM) ends the wait at once, not at the next slot.
            while !stopRequested, SystemTime.monotonicMs() < schedule.next {
                try? await Task.sleep(for: .milliseconds(min(100, schedule.next - SystemTime.monotonicMs())))
            }
            if stopRequested { break }
            if let n = options.hangAfterTicks, ticks >= n {
                // Test-only: a hung loop. No more ticks, no more watchdog pings.
                systemd.status("test switch: loop hung after \(ticks) ticks")
                while !stopRequested { try? await Task.sleep(for: .seconds(1)) }
                break
            }
            let started = SystemTime.monotonicMs()
            await checkConfigChanged()
            await tickOnce()
            let took = SystemTime.monotonicMs() - started
            if schedule.advance(by: engine.config.interval) {
                await emit(
                    Event(
                        kind: .tickOverrun, at: options.clock.now(),
                        message:
                            "A tick took \(took) ms, longer than the \(engine.config.interval) interval; skipping to the next slot.",
                        severity: .medium, value: Double(took) / 1000))
            }
        }
        systemd.stopping("stopping")
        if let task = rollbackTask {
            // A rollback in progress finishes its current phase (the executor checks for cancellation between
            // phases), and is recorded as interrupted if it could not finish.
            task.cancel()
            await task.value
        }
        await saveState(force: true)
        await fleet?.shutdown()
        metricsServer?.stop()
        await world.shutdown()
    }

    public func stop() {
        stopRequested = true
    }

    /// One tick: observe, evaluate, act, report, persist. The loop calls it on its schedule; a test may call it
    /// directly with a fake clock.
    func tickOnce() async {
        let started = SystemTime.monotonicMs()
        let now = options.clock.now()
        let verifying = engine.state.verification != nil
        let seen = await world.senses.observe(at: now, smokeURLs: verifying ? engine.config.rollback.smokeURLs : [])
        lastSamples = seen.observation.samples
        history.record(seen.observation.samples, at: now)
        if fleet != nil {
            await fleetTick(seen.observation, deployable: seen.deployable)
        } else {
            let out = engine.tick(seen.observation, deployable: seen.deployable)
            publishSnapshot()
            for e in out.events { await emit(e) }
            if let order = out.rollback { startRollback(order) }
        }
        ticks += 1
        lastTickMs = SystemTime.monotonicMs() - started
        counters.recordTick(
            at: now, samples: seen.observation.samples, seconds: Double(lastTickMs) / 1000,
            sampleSeconds: seen.sampleSeconds)
        await saveState()
        await publishTelemetry()
        systemd.status(statusLine())
        systemd.watchdog()
    }

    /// The samples the incident charts are drawn from.
    var chartSamples: SampleHistory { history }

    /// Waits until the rollback that is running (if any) has reported its result to the engine.
    func rollbackSettled() async {
        while let task = rollbackTask { await task.value }
    }

    private func startRollback(_ order: RollbackOrder) {
        let world = self.world
        let daemon = self
        rollbackTask = Task {
            // The order is on disk before anything runs: the privileged executor re-reads it from there, and a
            // crash from here on resumes it.
            await daemon.saveState()
            let result = await world.executeRollback(order) { phase, progress, detail in
                await daemon.phaseDone(phase, progress: progress, detail: detail)
            }
            await daemon.rollbackDone(result)
        }
    }

    private func phaseDone(_ phase: String, progress: PhaseProgress, detail: String) async {
        let events = engine.rollbackPhase(phase, progress: progress, detail: detail, now: options.clock.now())
        publishSnapshot()
        for e in events { await emit(e) }
        await saveState()
        await publishTelemetry()
    }

    private func rollbackDone(_ result: RollbackResult) async {
        rollbackTask = nil
        let events = engine.rollbackFinished(result, now: options.clock.now())
        publishSnapshot()
        for e in events { await emit(e) }
        await saveState()
        await publishTelemetry()
        systemd.status(statusLine())
    }

    func emit(_ event: Event) async {
        counters.record(event)
        await world.notify(event)
    }

    /// Refreshes the webhooks' delivery state, then hands `/metrics` a fresh snapshot.
    func publishTelemetry() async {
        lastWebhooks = await world.webhookTelemetry()
        publishSnapshot()
    }

    /// Hands `/metrics` a snapshot of the engine as it is now (the exporter renders from it on its own threads).
    /// Called right after each change of the engine's state, before any suspension, so `/metrics` never shows an
    /// older state than `status` does.
    func publishSnapshot() {
        telemetry.publish(
            TelemetrySnapshot(
                config: engine.config, state: engine.state, samples: lastSamples, counters: counters,
                webhooks: lastWebhooks, startedAt: telemetry.current.startedAt, fleet: fleetStanding))
    }

    /// Persists the engine's state: at once when a decision changed (`EngineState.decisions`: incidents, ledger,
    /// rollback, approvals, halt, trigger phases...), and at most every `observationSaveEvery` when only the
    /// observations did, which at a 250 ms interval is every tick (encoding the sample histories was an eighth of
    /// the daemon's CPU). `force` writes whatever changed (on stop).
    func saveState(force: Bool = false) async {
        let state = engine.state
        guard state != lastSavedState else { return }
        let before = Dictionary((lastSavedState?.incidents ?? []).map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for incident in state.incidents where before[incident.id] != incident {
            if let svg = chart(incident) { await world.incidentChart(incident, svg) }
            await world.incidentChanged(incident)
        }
        let now = options.clock.now()
        if !force, let saved = lastSavedState, let at = lastSavedAt, now - at < Self.observationSaveEvery,
            now >= at, state.decisions == saved.decisions
        {
            return
        }
        do {
            try store.save(state)
            lastSavedState = state
            lastSavedAt = now
        } catch {
            log.error("cannot save state: \(error)", metadata: ["state_dir": "\(options.stateDirectory)"])
        }
        if force || historySavedAt.map({ now - $0 >= Self.samplesSaveEvery || now < $0 }) ?? true {
            historySavedAt = now
            do { try store.saveSamples(history) } catch { log.error("cannot save the chart samples: \(error)") }
        }
    }

    /// The incident's chart from the samples kept in memory (nil when no trigger tripped).
    private func chart(_ incident: Incident) -> String? {
        guard let metric = incident.trips.first?.metric else { return nil }
        return IncidentChart.svg(
            IncidentChart.Inputs(
                incident: incident, deployedAt: engine.state.ledger.release(incident.fromVersion)?.liveSince,
                history: history, unit: engine.config.metric(named: metric)?.unit ?? .number,
                now: options.clock.now()))
    }

    // MARK: status and commands

    public func statusLine() -> String {
        let s = engine.state
        if let o = s.activeRollback { return "rolling back \(o.from) -> \(o.to) (incident \(o.incident))" }
        if let v = s.verification {
            return "verifying \(v.to) after rolling back from \(v.from) (incident \(v.incident))"
        }
        if let h = s.halted { return "halted: \(h.reason); run rollbackd rearm" }
        let armed = engine.config.triggers.filter { engine.effectiveAutomation($0, at: options.clock.now()) != .off }
            .count
        let known = s.ledger.releases.filter(\.isKnownGood).max { $0.liveSince < $1.liveSince }?.version
        let firing = s.triggers.filter { $0.value.phase == .firing }.map(\.key).sorted()
        var line = fleetStanding.map { $0.line + "; " } ?? ""
        line += firing.isEmpty ? "ok: " : "firing \(firing.joined(separator: ", ")): "
        line += "\(armed) triggers armed"
        if let current = s.ledger.current { line += ", \(current) live" }
        if let known { line += ", \(known) known-good" }
        if engine.isPaused(at: options.clock.now()) { line += ", paused" }
        line += ", last tick \(lastTickMs) ms"
        return line
    }

    public func snapshot() -> (config: Thresholds, state: EngineState, samples: [String: SampleValue], status: String) {
        (engine.config, engine.state, lastSamples, statusLine())
    }

    /// Applies an operator command to the engine and reports its events.
    public func command(_ body: (inout Engine, Timestamp) throws(EngineRefusal) -> EngineOutput)
        async throws(EngineRefusal) -> EngineOutput
    {
        while fleetTicking { try? await Task.sleep(for: .milliseconds(10)) }
        try checkFleetCommand()
        let out = try body(&engine, options.clock.now())
        publishSnapshot()
        for e in out.events { await emit(e) }
        if let order = out.rollback {
            if let fleet { await fleet.queue(order) } else { startRollback(order) }
        }
        await saveState()
        await publishTelemetry()
        systemd.status(statusLine())
        return out
    }
}
