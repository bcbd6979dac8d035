import FoundationEssentials
import Logging
import RollbackCore
import RollbackSystem

/// What this host remembers of its own part in fleet rollbacks (`<state dir>/fleet-host.json`): the order it is
/// carrying out (resumed after a restart, from the executor's phase journal) and the incidents it finished.
struct FleetHostRecord: Sendable, Equatable, Codable {
    var running: RollbackOrder?
    /// By order (`RollbackOrder.attempt`): an incident decided again is a new order.
    var finished: [String: HostRun.State] = [:]

    static func path(stateDirectory: String) -> String { stateDirectory + "/fleet-host.json" }

    /// The record in a state directory (nil: none yet); the privileged executor reads it too.
    static func load(stateDirectory: String) throws(StateStoreError) -> FleetHostRecord? {
        let path = path(stateDirectory: stateDirectory)
        guard FileIO.exists(path) else { return nil }
        do {
            return try StateStore.decoder.decode(FleetHostRecord.self, from: Data(try FileIO.readAll(path: path)))
        } catch {
            throw StateStoreError(path: path, reason: "not a rollbackd fleet record (\(error)); move it aside")
        }
    }

    static func save(_ record: FleetHostRecord, stateDirectory: String) throws(StateStoreError) {
        try StateStore.write(record, to: path(stateDirectory: stateDirectory), in: stateDirectory)
    }
}

/// One host's part in fleet mode, tick by tick: publish this host's evidence, keep or seek the leadership, and as
/// leader decide for the fleet on the summed evidence with fenced writes; on every host, carry out the fleet's
/// decision once. Never decides or executes without etcd.
actor FleetMember {
    let link: FleetLink
    let host: String
    private let recordPath: String
    private let log = Logger(label: "rollbackd.fleet")
    private let stateDirectory: String
    private(set) var record: FleetHostRecord
    private var evidence = FleetEvidence()
    private var knownHosts: Set<String>?
    private var partition: String?
    private var leader: String?
    private var hostCount = 0
    private let epoch: String
    private var seq: Int64 = 0
    private var ticks: [HostTick] = []
    private var lastWritten: EngineState?
    private var lastWrittenAt: Int64 = 0
    private var mirroredAt: Int64 = 0
    private var mirroredDecision: Int64?
    private static let observationWriteEveryMs: Int64 = 5000
    private static let mirrorEveryMs: Int64 = 5000

    init(config: FleetConfig, host: String, stateDirectory: String, interval: Interval) throws(StateStoreError) {
        self.host = host
        self.stateDirectory = stateDirectory
        // A request may take up to one interval (at least a second): a tick never waits on etcd much longer.
        let timeout = max(interval, .seconds(1))
        self.link = FleetLink(config: config, host: host, requestTimeout: timeout)
        self.partitionAfterMs = max(5000, 2 * interval.milliseconds)
        self.recordPath = FleetHostRecord.path(stateDirectory: stateDirectory)
        self.epoch = "\(SystemTime.now().millisecondsSinceEpoch)-\(UInt32.random(in: 0...UInt32.max))"
        self.record = try FleetHostRecord.load(stateDirectory: stateDirectory) ?? FleetHostRecord()
    }

    var standing: FleetStanding {
        FleetStanding(
            fleet: link.config.name, host: host,
            role: partition != nil ? .partitioned : (leader == host && isLeading ? .leader : .follower),
            leader: leader, reason: partition, hosts: hostCount)
    }

    private var isLeading = false
    /// When etcd requests began to fail (monotonic ms): a partition is declared only once they failed longer than an
    /// etcd election takes, so a member's re-election is not reported as this host being cut off.
    private var failingSinceMs: Int64?
    private var partitionAfterMs: Int64
    /// An order an operator command produced on the leader (`rollbackd rollback`, `approve`): written as the fleet's
    /// decision on the next tick.
    private var queued: RollbackOrder?

    func queue(_ order: RollbackOrder) { queued = order }

    struct Step: Sendable {
        /// The engine to continue with: the fleet's state (leader), or the fleet's state mirrored (follower).
        var engine: Engine?
        var events: [Event] = []
        /// This host should carry out (or resume) this rollback now.
        var execute: RollbackOrder?
        /// The decision this host wrote this tick as leader (it carries it out at once, not a tick later).
        var decided: FleetDecision?
    }

    // MARK: the tick

    func tick(observation: Observation, deployable: Set<String>?, engine: Engine, executing: Bool) async -> Step {
        var step = Step()
        let now = observation.at
        seq += 1
        ticks.append(HostTick(seq: seq, at: now, counts: observation.counts, histograms: observation.histograms))
        if ticks.count > HostReport.keptTicks { ticks.removeFirst(ticks.count - HostReport.keptTicks) }
        let report = HostReport(
            host: host, epoch: epoch, at: now, version: observation.version, versionReason: observation.versionReason,
            samples: observation.samples, ticks: ticks, deployable: deployable.map { $0.sorted() },
            smokeFailures: observation.smokeFailures, running: record.running?.attempt)
        do {
            // The leader acts on its token first, then renews its lease: a leader that was paused or cut off past
            // its lease learns it was deposed from the refusal of its own fenced write, never by acting alone.
            var control = try await link.readControl()
            leader = control.leader
            failingSinceMs = nil
            if partition != nil {
                step.events.append(
                    event(
                        .fleetRejoined, now,
                        "Host \(host) reaches etcd again; it publishes its evidence and follows the fleet's decisions.",
                        .medium))
                partition = nil
            }
            if await link.token != nil {
                try await lead(engine: engine, control: control, now: now, step: &step)
            }
            try await link.publish(report)
            await flushPendingRun()
            if await link.token == nil, control.leader == nil, let token = try await link.campaign() {
                control.leader = host
                control.leaderToken = token
                leader = host
                try await lead(engine: engine, control: control, now: now, step: &step)
            }
            if await link.token == nil {
                if isLeading {
                    isLeading = false
                    queued = nil
                    step.events.append(
                        event(
                            .fleetLeaderLost, now,
                            control.leader == host
                                ? "Host \(host) no longer leads the fleet: its lease expired (a tick or etcd too slow to renew it within \(link.config.leaseTTL)); its leader key goes with it."
                                : "Host \(host) no longer leads the fleet; \(control.leader ?? "nobody") holds the leader key.",
                            .high,
                            reason: control.leader == host ? "lease expired" : "another host won the leader key"))
                }
                try await follow(engine: engine, control: control, now: now, step: &step)
            }
            if !executing, let d = step.decided ?? control.decision,
                let order = orderToCarryOut(d, live: observation.version)
            {
                step.execute = order
            }
        } catch {
            let ms = SystemTime.monotonicMs()
            let since = failingSinceMs ?? ms
            failingSinceMs = since
            if partition == nil, ms - since >= partitionAfterMs {
                step.events.append(
                    event(
                        .fleetPartitioned, now,
                        "Host \(host) cannot reach etcd: it keeps sampling, and never rolls back alone until etcd answers.",
                        .high, reason: error.description))
                partition = error.description
            } else if partition != nil {
                partition = error.description
            }
            if !executing, let running = record.running {
                // Half a rollback is worse than finishing it: a run this host started resumes even without etcd.
                step.execute = running
            }
            // A leader keeps its token while cut off: when etcd answers again, its first fenced write tells whether
            // it still leads (it cannot write, hence cannot decide, meanwhile).
        }
        return step
    }

    /// The leader's part: sum the evidence, let the engine decide once for the fleet, write the result fenced.
    private func lead(engine: Engine, control: FleetLink.Control, now: Timestamp, step: inout Step)
        async throws(EtcdError)
    {
        var e = engine
        if !isLeading {
            // Continue exactly where the previous leader stopped: its state is the fleet's. An order queued while
            // this host led before is stale.
            if let s = try await link.readState() { e = Engine(config: engine.config, state: s) }
            queued = nil
            evidence = FleetEvidence()
            knownHosts = nil
            lastWritten = nil
            isLeading = true
            step.events.append(
                event(
                    .fleetLeaderElected, now,
                    "Host \(host) leads the fleet: it decides for every host on their summed evidence.", .medium,
                    extra: ["token": "\(control.leaderToken ?? 0)"]))
        }
        let reports = try await link.readHosts()
        let live = Set(reports.map(\.host))
        hostCount = live.count
        if let known = knownHosts {
            for h in live.subtracting(known).sorted() {
                step.events.append(
                    event(.fleetHostJoined, now, "Host \(h) joined the fleet.", .low, extra: ["host": h]))
            }
            for h in known.subtracting(live).sorted() {
                step.events.append(
                    event(
                        .fleetHostLeft, now,
                        "Host \(h) left the fleet (its lease expired); its evidence no longer counts.", .medium,
                        extra: ["host": h]))
            }
        }
        knownHosts = live
        // On a copy: counts are marked added only when this tick's result is written (or needs no write).
        var sum = evidence
        let view = sum.view(of: reports, metrics: e.config.metrics, ledger: e.state.ledger, at: now)
        var events: [Event] = []
        if let order = e.state.activeRollback, let d = control.decision, d.order.incident == order.incident {
            let runs = try await link.readRuns(order)
            let waiting = Set(
                reports.filter { $0.version == order.from || $0.running == order.attempt }.map(\.host))
            if let result = d.result(runs: runs, live: waiting) {
                events += e.rollbackFinished(result, now: now)
            }
        }
        let out = e.tick(view.observation, deployable: view.deployable)
        events += out.events
        var decision: FleetDecision?
        if let order = out.rollback ?? queued {
            let participants = view.versions.filter { $0.value == order.from }.map(\.key).sorted()
            decision = FleetDecision(
                order: order, leader: host, token: control.leaderToken ?? 0, participants: participants)
        }
        let ms = SystemTime.monotonicMs()
        // A lease that may have lapsed (this host was paused or slow): the fenced write is what tells.
        let doubt = await link.leaseAgeMs >= link.config.leaseTTL.milliseconds
        let due =
            doubt || decision != nil || lastWritten?.decisions != e.state.decisions
            || (lastWritten != e.state && ms - lastWrittenAt >= Self.observationWriteEveryMs)
        if due {
            guard try await link.writeFenced(state: e.state, decision: decision) else {
                // Another host leads now: nothing this tick decided happened; say so and follow.
                isLeading = false
                queued = nil
                await link.stepDown()
                step.events.append(
                    event(
                        .fleetLeaderLost, now,
                        "Host \(host) is no longer the fleet's leader: its write was refused (another host holds the leader key).",
                        .high,
                        reason: "fenced write refused"))
                return
            }
            lastWritten = e.state
            lastWrittenAt = ms
            if decision != nil { queued = nil }
            step.decided = decision
        }
        evidence = sum
        step.engine = e
        step.events += events
    }

    /// A follower keeps a copy of the fleet's state (for `status`, and for the privileged executor's re-check).
    private func follow(engine: Engine, control: FleetLink.Control, now: Timestamp, step: inout Step)
        async throws(EtcdError)
    {
        let ms = SystemTime.monotonicMs()
        guard control.decisionRevision != mirroredDecision || ms - mirroredAt >= Self.mirrorEveryMs else { return }
        if let s = try await link.readState() { step.engine = Engine(config: engine.config, state: s) }
        mirroredDecision = control.decisionRevision
        mirroredAt = ms
    }

    /// The order this host should carry out for the standing decision, if any: it runs the release the fleet
    /// rolled back from, and it has not finished (or given up on) this incident.
    private func orderToCarryOut(_ d: FleetDecision, live: String?) -> RollbackOrder? {
        if let running = record.running { return running }
        guard d.applies(toLive: live, finished: record.finished[d.order.attempt] != nil) else { return nil }
        return d.order
    }

    // MARK: this host's run

    /// Called before the run starts: the order is on disk, so a crash resumes it.
    func runStarted(_ order: RollbackOrder, now: Timestamp) async {
        record.running = order
        saveRecord()
        try? await link.reportRun(
            HostRun(host: host, incident: order.incident, state: .running, detail: "started", at: now), of: order)
    }

    func phase(_ order: RollbackOrder, _ phase: String, _ progress: PhaseProgress, _ detail: String, now: Timestamp)
        async
    {
        try? await link.reportRun(
            HostRun(
                host: host, incident: order.incident, state: .running, phase: "\(phase) \(progress.rawValue)",
                detail: detail, at: now), of: order)
    }

    /// The run ended; an interruption leaves it running (resumed on the next start).
    func runFinished(_ order: RollbackOrder, _ result: RollbackResult, now: Timestamp) async {
        let state: HostRun.State
        let detail: String
        switch result {
        case .succeeded: (state, detail) = (.succeeded, "rolled back to \(order.to)")
        case let .failed(why): (state, detail) = (.failed, why)
        case let .refused(gate): (state, detail) = (.refused, "\(gate.gate): \(gate.detail)")
        case let .demotedToApproval(why): (state, detail) = (.refused, why)
        case let .awaitingApproval(step, why):
            // A plan's approval step: fleet mode cannot approve one yet; the plan stays stopped before it here.
            (state, detail) = (.refused, "step \(step) needs approval, which fleet mode does not support yet: \(why)")
        case let .interrupted(why): (state, detail) = (.interrupted, why)
        }
        if state != .interrupted {
            record.running = nil
            record.finished[order.attempt] = state
            saveRecord()
        }
        // Reported until etcd takes it: the leader waits for it.
        let run = HostRun(host: host, incident: order.incident, state: state, detail: detail, at: now)
        for _ in 0..<5 {
            do {
                try await link.reportRun(run, of: order)
                return
            } catch {
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
        pendingRun = (run, order)
    }

    /// A final run report etcd did not take yet; sent again on the next tick that reaches etcd.
    private var pendingRun: (run: HostRun, order: RollbackOrder)?

    func flushPendingRun() async {
        guard let p = pendingRun else { return }
        if (try? await link.reportRun(p.run, of: p.order)) != nil { pendingRun = nil }
    }

    /// Saved before a run starts and when it ends; a record that cannot be written is said in the journal (a crash
    /// would then not resume the run from it, though its phase journal still keeps any phase from running twice).
    private func saveRecord() {
        do { try FleetHostRecord.save(record, stateDirectory: stateDirectory) } catch {
            log.error("cannot save the fleet record: \(error)", metadata: ["path": "\(recordPath)"])
        }
    }

    func shutdown() async {
        await link.resign()
    }

    private func event(
        _ kind: EventKind, _ at: Timestamp, _ message: String, _ severity: Severity, reason: String? = nil,
        extra: [String: String] = [:]
    ) -> Event {
        var x = extra
        x["fleet"] = link.config.name
        if x["host"] == nil { x["host"] = host }
        return Event(kind: kind, at: at, message: message, severity: severity, reason: reason, extra: x)
    }
}
