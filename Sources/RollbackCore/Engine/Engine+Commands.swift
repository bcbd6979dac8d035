extension Engine {
    /// `rollbackd approve ID`: executes the prepared rollback after re-checking that it is still safe.
    public mutating func approve(_ id: String, by who: String, now: Timestamp, deployable: Set<String>? = nil)
        throws(EngineRefusal) -> EngineOutput
    {
        guard let pending = state.approvals.first(where: { $0.incident == id }) else {
            throw EngineRefusal(
                "no pending approval for \(id)\(state.approvals.isEmpty ? "" : "; pending: \(state.approvals.map(\.incident).joined(separator: ", "))")"
            )
        }
        guard state.activeRollback == nil, state.verification == nil else {
            throw EngineRefusal("a rollback is already in progress")
        }
        if let step = pending.planStep {
            return approvePlanStep(pending, step: step, by: who, now: now)
        }
        guard state.ledger.current == pending.from else {
            throw EngineRefusal("the live release is \(state.ledger.current ?? "unknown"), no longer \(pending.from)")
        }
        guard let target = state.ledger.release(pending.to), target.rolledBackFromAt == nil, target.isKnownGood,
            deployable?.contains(pending.to) ?? true
        else {
            throw EngineRefusal("\(pending.to) is no longer a known-good target")
        }
        guard let idx = state.incidents.firstIndex(where: { $0.id == id }) else {
            throw EngineRefusal("incident \(id) is gone")
        }
        state.approvals.removeAll { $0.incident == id }
        state.incidents[idx].approver = who
        appendTimeline(idx, now, .approvalGiven, "approved by \(who)")
        var out = EngineOutput()
        out.events.append(
            Event(
                kind: .approvalGiven, at: now,
                message: "\(who) approved rolling back \(pending.from) -> \(pending.to) (incident \(id)).",
                severity: .high, incident: id, trigger: pending.trigger, fromVersion: pending.from,
                toVersion: pending.to, decision: "rollback", extra: ["by": who]))
        start(
            RollbackOrder(
                incident: id, from: pending.from, to: pending.to, trigger: pending.trigger, automatic: false,
                requestedBy: who, orderedAt: now), idx: idx, now: now, out: &out)
        return out
    }

    /// Approving the step a plan stopped before: the plan resumes from its journal with that step approved. The
    /// steps before it ran, so the live release may already be the target; the gates passed before its first phase.
    mutating func approvePlanStep(_ pending: PendingApproval, step: Int, by who: String, now: Timestamp)
        -> EngineOutput
    {
        let id = pending.incident
        state.approvals.removeAll { $0.incident == id }
        let label = config.rollback.stepFields(ofPhase: "\(step).")["step_label"] ?? "\(step)"
        var out = EngineOutput()
        out.events.append(
            Event(
                kind: .approvalGiven, at: now,
                message:
                    "\(who) approved step \(label) of the rollback plan \(pending.from) -> \(pending.to) (incident \(id)); the plan goes on.",
                severity: .high, incident: id, trigger: pending.trigger, fromVersion: pending.from,
                toVersion: pending.to, decision: "rollback",
                extra: config.rollback.stepFields(ofPhase: "\(step).").merging(["by": who]) { a, _ in a }))
        guard let idx = state.incidents.firstIndex(where: { $0.id == id }) else { return out }
        state.incidents[idx].approver = who
        appendTimeline(idx, now, .approvalGiven, "step \(label) approved by \(who)")
        // Not `start`: the order was counted when the plan began, and this is the same rollback going on.
        state.activeRollback = RollbackOrder(
            incident: id, from: pending.from, to: pending.to, trigger: pending.trigger, automatic: false,
            requestedBy: who, orderedAt: now, approvedStep: step)
        state.incidents[idx].status = .rollingBack
        out.rollback = state.activeRollback
        return out
    }

    /// `rollbackd deny ID`: no rollback for this incident; it stays open for people to handle.
    public mutating func deny(_ id: String, by who: String, now: Timestamp) throws(EngineRefusal) -> [Event] {
        guard let pending = state.approvals.first(where: { $0.incident == id }) else {
            throw EngineRefusal("no pending approval for \(id)")
        }
        if let step = pending.planStep { return denyPlanStep(pending, step: step, by: who, now: now) }
        state.approvals.removeAll { $0.incident == id }
        var events: [Event] = [
            Event(
                kind: .approvalDenied, at: now,
                message: "\(who) denied rolling back \(pending.from) -> \(pending.to) (incident \(id)).",
                severity: .high, incident: id, trigger: pending.trigger, fromVersion: pending.from,
                toVersion: pending.to, decision: "none", extra: ["by": who])
        ]
        if let idx = state.incidents.firstIndex(where: { $0.id == id }) {
            state.incidents[idx].approver = who
            appendTimeline(idx, now, .approvalDenied, "denied by \(who)")
            closeIncident(id, outcome: .denied, now: now, text: "denied by \(who)", events: &events)
        }
        return events
    }

    /// `rollbackd rearm`: a human has looked after a failed rollback or verification.
    public mutating func rearm(by who: String, now: Timestamp) throws(EngineRefusal) -> [Event] {
        guard let h = state.halted else { throw EngineRefusal("automation is not halted") }
        state.halted = nil
        return [
            Event(
                kind: .automationRearmed, at: now,
                message: "\(who) re-armed automatic rollbacks (halted since \(h.at): \(h.reason)).",
                severity: .medium, incident: h.incident, reason: h.reason, extra: ["by": who])
        ]
    }

    /// `rollbackd pause [--for D]`: a maintenance window; every trigger notifies only. nil `until` = until resume.
    public mutating func pause(until: Timestamp?, by who: String, now: Timestamp) -> [Event] {
        state.pausedUntil = until ?? Timestamp(millisecondsSinceEpoch: Int64.max / 2)
        state.pausedBy = who
        let untilText = until.map { "until \($0)" } ?? "until rollbackd resume"
        return [
            Event(
                kind: .automationPaused, at: now,
                message: "\(who) paused automation \(untilText): triggers notify only.",
                severity: .medium, reason: "maintenance window", extra: ["by": who])
        ]
    }

    public mutating func resume(by who: String, now: Timestamp) throws(EngineRefusal) -> [Event] {
        guard isPaused(at: now) else { throw EngineRefusal("automation is not paused") }
        state.pausedUntil = nil
        state.pausedBy = nil
        return [
            Event(
                kind: .automationResumed, at: now, message: "\(who) resumed automation.", severity: .medium,
                extra: ["by": who])
        ]
    }

    /// Marks a release known-good by hand (for a first install, or the demo).
    public mutating func markKnownGood(_ version: String, by who: String, now: Timestamp) throws(EngineRefusal)
        -> [Event]
    {
        guard state.ledger.release(version) != nil else {
            throw EngineRefusal(
                "\(version) has never been seen live; known releases: \(state.ledger.releases.map(\.version).joined(separator: ", "))"
            )
        }
        state.ledger.update(version) {
            $0.knownGoodAt = now; $0.rolledBackFromAt = nil
        }
        return [
            Event(
                kind: .releaseKnownGood, at: now, message: "\(who) marked \(version) known-good.", severity: .low,
                toVersion: version, extra: ["by": who])
        ]
    }

    /// Records a release that is known to exist and be good without having been seen live (e.g. the previous
    /// release on first install). It becomes a rollback target.
    public mutating func registerRelease(_ version: String, knownGood: Bool, now: Timestamp) {
        if state.ledger.release(version) == nil {
            state.ledger.releases.insert(
                Release(
                    version: version, firstSeenAt: now, liveSince: Timestamp(millisecondsSinceEpoch: 0),
                    cleanSince: nil, knownGoodAt: knownGood ? now : nil, rolledBackFromAt: nil,
                    baseline: [:]), at: 0)
        }
    }

    /// `rollbackd rollback [--to VERSION]`: a manual rollback through the target gate; not limited by the
    /// automation level, cooldown or budget (a human decided), but never to a release rolled back from.
    public mutating func requestRollback(
        to requested: String?, by who: String, now: Timestamp,
        deployable: Set<String>? = nil
    ) throws(EngineRefusal) -> EngineOutput {
        guard state.activeRollback == nil, state.verification == nil else {
            throw EngineRefusal("a rollback is already in progress")
        }
        guard let current = state.ledger.current else { throw EngineRefusal("the live release is unknown") }
        let target: Release
        if let requested {
            guard requested != current else { throw EngineRefusal("\(requested) is already live") }
            guard let r = state.ledger.release(requested) else {
                throw EngineRefusal(
                    "\(requested) is not in the release ledger; known: \(state.ledger.releases.map(\.version).joined(separator: ", "))"
                )
            }
            guard r.rolledBackFromAt == nil else {
                throw EngineRefusal(
                    "\(requested) was rolled back from at \(r.rolledBackFromAt!); it is never a target again")
            }
            guard r.isKnownGood else { throw EngineRefusal("\(requested) is not known-good") }
            guard deployable?.contains(requested) ?? true else {
                throw EngineRefusal("the strategy cannot deploy \(requested)")
            }
            target = r
        } else {
            guard let r = state.ledger.target(excluding: current, deployable: deployable) else {
                throw EngineRefusal("no known-good release other than \(current) that was never rolled back from")
            }
            target = r
        }
        var out = EngineOutput()
        let idx: Int
        if let i = state.incidents.firstIndex(where: { $0.fromVersion == current && $0.status != .closed }) {
            idx = i
        } else {
            let id = "INC-\(now.compactUTC)-\(Self.sanitize(current))"
            state.incidents.append(
                Incident(
                    id: id, service: config.service, fromVersion: current, toVersion: target.version,
                    openedAt: now, closedAt: nil, status: .open, outcome: nil, trips: [], gates: [],
                    decision: "rollback", decisionReason: "manual rollback by \(who)", approver: who,
                    rollbackStartedAt: nil, rollbackFinishedAt: nil, verifiedAt: nil,
                    timeline: [
                        TimelineEntry(at: now, kind: .incidentOpened, text: "manual rollback requested by \(who)")
                    ]))
            idx = state.incidents.count - 1
            out.events.append(
                Event(
                    kind: .incidentOpened, at: now,
                    message: "Incident \(id) opened: \(who) asked to roll back \(current).",
                    severity: .high, incident: id, fromVersion: current, toVersion: target.version, extra: ["by": who]))
        }
        state.approvals.removeAll { $0.incident == state.incidents[idx].id }
        state.incidents[idx].approver = who
        start(
            RollbackOrder(
                incident: state.incidents[idx].id, from: current, to: target.version, trigger: nil,
                automatic: false, requestedBy: who, orderedAt: now), idx: idx, now: now, out: &out)
        return out
    }
}

extension Engine {
    /// Denying the step a plan stopped before: the plan stays halted there (its journal keeps it), the incident
    /// closes `denied`, and automation halts, since the service is part rolled back.
    mutating func denyPlanStep(_ pending: PendingApproval, step: Int, by who: String, now: Timestamp) -> [Event] {
        let id = pending.incident
        state.approvals.removeAll { $0.incident == id }
        let fields = config.rollback.stepFailureFields(failed: step - 1)
        let label = fields["step_label"] ?? "\(step)"
        let notRun = [label] + (fields["steps_not_run"].map { $0 == "none" ? [] : [$0] } ?? [])
        let reason =
            "\(who) denied step \(label) of the rollback plan \(pending.from) -> \(pending.to); steps run: \(fields["steps_run"] ?? "none"); not run: \(notRun.joined(separator: "; "))"
        var events: [Event] = [
            Event(
                kind: .approvalDenied, at: now,
                message: "\(reason). The plan stays halted before step \(label).",
                severity: .critical, incident: id, trigger: pending.trigger, fromVersion: pending.from,
                toVersion: pending.to, decision: "none", reason: reason,
                extra: fields.merging(["by": who]) { a, _ in a })
        ]
        if let idx = state.incidents.firstIndex(where: { $0.id == id }) {
            state.incidents[idx].approver = who
            appendTimeline(idx, now, .approvalDenied, "step \(label) denied by \(who); the plan stays halted")
        }
        events += halt(reason: reason, incident: id, now: now)
        closeIncident(id, outcome: .denied, now: now, text: "step \(label) denied by \(who)", events: &events)
        return events
    }
}
