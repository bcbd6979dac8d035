/// The privileged executor's own decision (issue 6, privilege separation). The unprivileged daemon asks it to
/// roll incident X back to release Y; the executor re-reads the configuration and the daemon's saved state itself
/// and takes nothing else from the request. This is the pure part: given what it read, may it execute?
///
/// Checked, in order (the first failure refuses, and nothing changes):
/// - `order`: the saved state has this very rollback in progress (incident and target), so a request can only
///   carry out what the engine decided and persisted, never pick its own target.
/// - `fleet` (fleet mode, a standing decision only): the fleet's leader decided and gated it; the host carries it
///   out when it still runs the release rolled back from, and nothing else is checked.
/// - `incident`: the incident exists and is not closed.
/// - `live`: the release the executor itself reads is the order's `from` (nothing has changed since the
///   decision), or the order's `to` when the executor's journal shows this rollback already ran (a resume).
/// - `armed`, `automation` (automatic orders only: the trigger still exists and is `full` after the cap and any
///   pause), `target` (known-good, never rolled back from), `budget` (automatic orders within `budget.max`).
/// A resume of a rollback whose phases already started skips the policy gates: half a rollback is worse than
/// finishing it, and the gates passed before its first phase.
public enum ExecutionCheck {
    public struct Request: Sendable, Equatable {
        public var incident: String
        public var to: String
        public init(incident: String, to: String) {
            self.incident = incident
            self.to = to
        }
    }

    public enum Verdict: Sendable, Equatable {
        case execute(RollbackOrder, gates: [GateResult])
        case refuse(GateResult)
    }

    /// - Parameters:
    ///   - live: the live release as the executor's strategy reads it (nil: unknown, with `liveReason`).
    ///   - journaled: the executor's journal holds this rollback (same incident and target), started or finished.
    public static func check(
        _ request: Request, config: Thresholds, state: EngineState, live: String?,
        liveReason: String? = nil, journaled: Bool, now: Timestamp
    ) -> Verdict {
        var passed: [GateResult] = []
        func refuse(_ gate: String, _ detail: String) -> Verdict {
            .refuse(GateResult(gate: gate, passed: false, detail: detail))
        }
        func pass(_ gate: String, _ detail: String) {
            passed.append(GateResult(gate: gate, passed: true, detail: detail))
        }

        guard let order = state.activeRollback else {
            return refuse(
                "order",
                "the daemon's saved state has no rollback in progress; nothing to execute for incident \(request.incident)"
            )
        }
        guard order.incident == request.incident, order.to == request.to else {
            return refuse(
                "order",
                "the rollback in progress is incident \(order.incident) to \(order.to), not incident \(request.incident) to \(request.to)"
            )
        }
        pass("order", "incident \(order.incident): \(order.from) -> \(order.to), ordered at \(order.orderedAt)")
        if order.standing == true {
            // A fleet decision that stands: the fleet's leader decided and gated it; this host only converges on it.
            switch live {
            case order.from?:
                pass(
                    "fleet", "standing fleet decision of incident \(order.incident): this host still runs \(order.from)"
                )
            case order.to? where journaled:
                pass("fleet", "standing fleet decision of incident \(order.incident), in the journal: resuming")
            default:
                return refuse(
                    "live", "the live release is \(live ?? "unknown"), not \(order.from): nothing to carry out here")
            }
            return .execute(order, gates: passed)
        }
        guard let incident = state.incident(order.incident), incident.status != .closed else {
            return refuse("incident", "incident \(order.incident) is unknown or closed")
        }
        pass("incident", "incident \(incident.id) is \(incident.status.rawValue)")

        switch live {
        case order.from?:
            pass("live", "\(order.from) is live, as when the rollback was decided")
        case order.to? where journaled:
            pass("live", "\(order.to) is already live and this rollback is in the executor's journal: resuming")
        case let other?:
            return refuse(
                "live", "the live release is \(other), not \(order.from): the deployment changed since the decision")
        case nil:
            return refuse("live", "cannot read the live release: \(liveReason ?? "unknown reason")")
        }
        if journaled {
            pass("resume", "this rollback already started; it is finished without re-checking policy gates")
            return .execute(order, gates: passed)
        }

        if let h = state.halted {
            return refuse("armed", "automation halted since \(h.at): \(h.reason)")
        }
        pass("armed", "armed")
        let engine = Engine(config: config, state: state)
        if order.automatic {
            guard let name = order.trigger, let t = config.trigger(named: name) else {
                return refuse("automation", "trigger \(order.trigger ?? "?") is not in the current configuration")
            }
            let level = engine.effectiveAutomation(t, at: now)
            guard level == .full else {
                return refuse(
                    "automation",
                    "trigger \(name) is now \(level.rawValue), not full\(engine.isPaused(at: now) ? " (maintenance pause)" : "")"
                )
            }
            pass("automation", "trigger \(name) is full")
        } else {
            pass("automation", "requested by \(order.requestedBy ?? "an operator")")
        }
        guard let target = state.ledger.release(order.to) else {
            return refuse("target", "\(order.to) is not in the release ledger")
        }
        guard target.isKnownGood else { return refuse("target", "\(order.to) is not known-good") }
        guard target.rolledBackFromAt == nil else { return refuse("target", "\(order.to) was rolled back from before") }
        guard order.to != order.from else { return refuse("target", "\(order.to) is the release being rolled back") }
        pass("target", "\(order.to) is known-good and was never rolled back from")
        if order.automatic {
            let used = engine.automaticRollbacks(since: now - config.safety.budgetWindow)
            guard used <= config.safety.budgetMax else {
                return refuse(
                    "budget",
                    "\(used) automatic rollbacks in the last \(config.safety.budgetWindow), budget \(config.safety.budgetMax)"
                )
            }
            pass(
                "budget",
                "\(used) of \(config.safety.budgetMax) automatic rollbacks in \(config.safety.budgetWindow), this one included"
            )
        }
        return .execute(order, gates: passed)
    }
}
