import RollbackCore
import RollbackSystem

/// Fleet mode's part of the run loop: the engine's decisions come from the fleet (this host leads, or mirrors the
/// leader's state), and this host carries out the fleet's decision itself, once.
extension Daemon {
    func fleetTick(_ observation: Observation, deployable: Set<String>?) async {
        guard let fleet else { return }
        fleetTicking = true
        defer { fleetTicking = false }
        let step = await fleet.tick(
            observation: observation, deployable: deployable, engine: engine, executing: rollbackTask != nil)
        fleetStanding = await fleet.standing
        if let e = step.engine { engine = Engine(config: engine.config, state: e.state) }
        publishSnapshot()
        for e in step.events { await emit(e) }
        if let order = step.execute, rollbackTask == nil { startFleetRun(order, fleet) }
    }

    /// Operator commands change the fleet's state: only the leader may apply them (it writes them fenced).
    func checkFleetCommand() throws(EngineRefusal) {
        guard fleet != nil else { return }
        guard let s = fleetStanding else {
            throw EngineRefusal("this host has not reached the fleet's etcd yet: try again after its first tick")
        }
        switch s.role {
        case .leader: return
        case .follower:
            throw EngineRefusal(
                "this host (\(s.host)) follows fleet \(s.fleet); the leader is \(s.leader ?? "not elected yet"): run the command on the leader"
            )
        case .partitioned:
            throw EngineRefusal(
                "this host (\(s.host)) cannot reach etcd (\(s.reason ?? "unknown")): fleet \(s.fleet)'s state cannot change from here"
            )
        }
    }

    private func startFleetRun(_ fleetOrder: RollbackOrder, _ fleet: FleetMember) {
        var standing = fleetOrder
        if engine.state.activeRollback?.attempt != standing.attempt {
            // The fleet's rollback finished while this host was away: the fleet state has no rollback in progress,
            // so the order says it stands (this host's fleet record holds it, and the privileged executor reads it
            // from there). A resumed run keeps what it said when it started.
            if standing.standing == nil { standing.standing = true }
        }
        let order = standing
        let world = self.world
        let daemon = self
        let clock = options.clock
        rollbackTask = Task {
            // The order is on disk (state.json's copy of the fleet state, and this host's fleet record) before
            // anything runs: the privileged executor re-reads it, and a crash resumes it.
            await daemon.saveState()
            await fleet.runStarted(order, now: clock.now())
            await daemon.emitRun(
                order,
                "Host \(fleet.host) carries out the fleet's rollback \(order.from) -> \(order.to) (incident \(order.incident)).",
                phase: "start", severity: .high)
            let result = await world.executeRollback(order) { phase, progress, detail in
                await fleet.phase(order, phase, progress, detail, now: clock.now())
                await daemon.emitRun(
                    order,
                    "Host \(fleet.host): phase \(phase) \(progress.rawValue)\(detail.isEmpty ? "" : ": \(detail)").",
                    phase: phase, severity: progress == .failed ? .high : .medium)
            }
            await fleet.runFinished(order, result, now: clock.now())
            await daemon.fleetRunDone(order, result, host: fleet.host)
        }
    }

    private func fleetRunDone(_ order: RollbackOrder, _ result: RollbackResult, host: String) async {
        rollbackTask = nil
        let (text, severity): (String, Severity) =
            switch result {
            case .succeeded: ("rolled back to \(order.to)", .high)
            case let .failed(why): ("failed: \(why)", .critical)
            case let .refused(gate): ("refused by \(gate.gate): \(gate.detail)", .critical)
            case let .demotedToApproval(why): ("needs a person: \(why)", .critical)
            case let .awaitingApproval(step, why):
                ("stopped before step \(step), which needs approval: \(why)", .critical)
            case let .interrupted(why): ("interrupted (resumed on the next start): \(why)", .high)
            }
        await emitRun(
            order, "Host \(host) finished its part of incident \(order.incident): \(text).", phase: "end",
            severity: severity)
        await saveState()
        await publishTelemetry()
        systemd.status(statusLine())
    }

    private func emitRun(_ order: RollbackOrder, _ message: String, phase: String, severity: Severity) async {
        await emit(
            Event(
                kind: .rollbackPhase, at: options.clock.now(), message: message, severity: severity,
                incident: order.incident, fromVersion: order.from, toVersion: order.to,
                extra: ["phase": phase, "host": fleetStanding?.host ?? "", "fleet": fleetStanding?.fleet ?? ""]))
    }
}
