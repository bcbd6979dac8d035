extension Engine {
    /// Orders tripped triggers: full before semi before manual, then by severity, then table order.
    private func firingTriggers(now: Timestamp) -> [TriggerDefinition] {
        let liveSince = state.ledger.current.flatMap { state.ledger.release($0) }?.liveSince ?? now
        return config.triggers.enumerated()
            .filter { item in
                guard let s = state.triggers[item.element.name], s.phase == .firing, (s.trippedAt ?? now) >= liveSince
                else { return false }
                return effectiveAutomation(item.element, at: now) != .off
            }
            .sorted { a, b in
                let la = effectiveAutomation(a.element, at: now), lb = effectiveAutomation(b.element, at: now)
                if la != lb { return la > lb }
                if a.element.severity != b.element.severity { return a.element.severity > b.element.severity }
                return a.offset < b.offset
            }
            .map(\.element)
    }

    mutating func decide(now: Timestamp, deployable: Set<String>?, out: inout EngineOutput) {
        guard let current = state.ledger.current else { return }
        for t in firingTriggers(now: now) {
            guard let idx = state.incidents.firstIndex(where: { $0.fromVersion == current && $0.status != .closed })
            else { continue }
            let incidentID = state.incidents[idx].id
            if state.incidents[idx].status == .awaitingApproval, effectiveAutomation(t, at: now) != .full { continue }
            let level = effectiveAutomation(t, at: now)
            let gates = gates(for: t, level: level, now: now, deployable: deployable)
            let target = state.ledger.target(excluding: current, deployable: deployable)
            let firstFailure = gates.first { !$0.passed }
            let decision: Decision
            switch (level, firstFailure) {
            case (.manual, _), (.off, _):
                let automationBlocked = firstFailure?.gate == "automation"
                let others = gates.filter { !$0.passed && $0.gate != "automation" }
                if let target, others.allSatisfy({ $0.gate == "dry_run" }) {
                    decision = .notify(
                        recommendation:
                            "roll back \(current) -> \(target.version): rollbackd rollback --to \(target.version)")
                } else {
                    let why = others.first?.detail ?? (automationBlocked ? "no safe target" : "")
                    decision = .notify(recommendation: "no automatic rollback possible: \(why)")
                }
            case (_, let failure?):
                decision = .blocked(gate: failure.gate, reason: failure.detail)
            case (.semi, nil):
                decision = .awaitApproval(target: target?.version ?? "?")
            case (.full, nil):
                decision = .rollback(target: target?.version ?? "?")
            }
            let key = "\(incidentID)/\(t.name)"
            let signature = "\(decision)"
            if state.lastDecisions[key] == signature { continue }
            state.lastDecisions[key] = signature
            state.incidents[idx].gates = gates
            state.incidents[idx].decision = decision.name
            let s = state.triggers[t.name] ?? TriggerState()
            var event = Event(
                kind: .decision, at: now, message: "", severity: t.severity, incident: incidentID,
                trigger: t.name, automation: level, metric: t.metric, value: s.lastValue,
                threshold: s.lastThreshold, fromVersion: current, decision: decision.name,
                dryRun: t.dryRun ? true : nil)
            // On a counted metric the decision carries the evidence it acted on.
            let evidence = s.evidence != nil ? evidenceText(t, s).map { " (\($0))" } ?? "" : ""
            if s.evidence != nil { event.extra.merge(evidenceFields(s)) { _, new in new } }
            switch decision {
            case .none:
                continue
            case let .notify(recommendation):
                event.message =
                    "Trigger \(t.name) (\(t.severity.rawValue), automation \(level.rawValue)) fired on \(current)\(evidence); recommended: \(recommendation)."
                event.reason = recommendation
                event.toVersion = target?.version
                state.incidents[idx].decisionReason = recommendation
                out.events.append(event)
                appendTimeline(idx, now, .decision, "decision notify: \(recommendation)")
            case let .blocked(gate, reason):
                event.message =
                    "Trigger \(t.name) fired on \(current)\(evidence) but the rollback is blocked by the \(gate) gate: \(reason)."
                event.reason = reason
                event.toVersion = target?.version
                event.extra["gate"] = gate
                state.incidents[idx].decisionReason = reason
                out.events.append(event)
                out.events.append(
                    Event(
                        kind: .gateBlocked, at: now,
                        message: "Gate \(gate) blocked the rollback of \(current): \(reason).",
                        severity: t.severity, incident: incidentID, trigger: t.name, automation: level,
                        fromVersion: current, toVersion: target?.version, decision: decision.name,
                        reason: reason, dryRun: t.dryRun ? true : nil, extra: ["gate": gate]))
                appendTimeline(idx, now, .gateBlocked, "blocked by \(gate): \(reason)")
            case let .awaitApproval(to):
                event.message =
                    "Trigger \(t.name) fired on \(current)\(evidence); rollback to \(to) is prepared and waits for approval: rollbackd approve \(incidentID)."
                event.toVersion = to
                event.reason = "automation semi"
                state.incidents[idx].status = .awaitingApproval
                state.incidents[idx].toVersion = to
                state.incidents[idx].decisionReason = "awaiting approval"
                state.approvals.removeAll { $0.incident == incidentID }
                state.approvals.append(
                    PendingApproval(incident: incidentID, trigger: t.name, from: current, to: to, requestedAt: now))
                out.events.append(event)
                out.events.append(
                    Event(
                        kind: .approvalRequested, at: now,
                        message:
                            "Approval requested for incident \(incidentID): roll back \(current) -> \(to). Run rollbackd approve \(incidentID) or rollbackd deny \(incidentID).",
                        severity: t.severity, incident: incidentID, trigger: t.name, automation: level,
                        fromVersion: current, toVersion: to, decision: decision.name))
                appendTimeline(idx, now, .approvalRequested, "approval requested: \(current) -> \(to)")
            case let .rollback(to):
                event.message = "Trigger \(t.name) fired on \(current)\(evidence); rolling back to known-good \(to)."
                event.toVersion = to
                event.reason = "all gates passed"
                out.events.append(event)
                state.approvals.removeAll { $0.incident == incidentID }
                let order = RollbackOrder(
                    incident: incidentID, from: current, to: to, trigger: t.name, automatic: true,
                    requestedBy: nil, orderedAt: now)
                start(order, idx: idx, now: now, out: &out)
                return
            }
        }
    }

    mutating func appendTimeline(_ idx: Int, _ at: Timestamp, _ kind: EventKind, _ text: String) {
        state.incidents[idx].timeline.append(TimelineEntry(at: at, kind: kind, text: text))
    }

    mutating func start(_ order: RollbackOrder, idx: Int, now: Timestamp, out: inout EngineOutput) {
        state.activeRollback = order
        state.rollbackLog.append(order)
        let cutoff = now - max(config.safety.budgetWindow, config.safety.cooldown)
        state.rollbackLog.removeAll { $0.orderedAt < cutoff && $0 != order }
        state.incidents[idx].status = .rollingBack
        state.incidents[idx].toVersion = order.to
        state.incidents[idx].decision = Decision.rollback(target: order.to).name
        state.incidents[idx].rollbackStartedAt = now
        let who = order.requestedBy.map { " (by \($0))" } ?? ""
        appendTimeline(idx, now, .rollbackStarted, "rollback \(order.from) -> \(order.to) started\(who)")
        out.events.append(
            Event(
                kind: .rollbackStarted, at: now,
                message: "Rolling back \(order.from) -> \(order.to) (incident \(order.incident))\(who).",
                severity: .high, incident: order.incident, trigger: order.trigger,
                fromVersion: order.from, toVersion: order.to, decision: "rollback",
                extra: order.requestedBy.map { ["by": $0] } ?? [:]))
        out.rollback = order
    }
}
