extension Engine {
    /// Evaluates the gates, in order, for a rollback away from the current release.
    public func gates(for t: TriggerDefinition, level: AutomationLevel, now: Timestamp, deployable: Set<String>?)
        -> [GateResult]
    {
        var gates: [GateResult] = []
        let current = state.ledger.current
        switch level {
        case .full: gates.append(GateResult(gate: "automation", passed: true, detail: "full: executes at once"))
        case .semi:
            gates.append(GateResult(gate: "automation", passed: true, detail: "semi: executes on rollbackd approve"))
        case .manual, .off:
            var why = "\(level.rawValue): notify only"
            if isPaused(at: now), let until = state.pausedUntil {
                why += " (maintenance pause until \(until))"
            } else if t.automation > config.automation {
                why += " (capped by the top-level automation \(config.automation.rawValue))"
            }
            gates.append(GateResult(gate: "automation", passed: false, detail: why))
        }
        if let h = state.halted {
            gates.append(
                GateResult(
                    gate: "armed", passed: false,
                    detail: "automation halted since \(h.at): \(h.reason); run rollbackd rearm"))
        } else {
            gates.append(GateResult(gate: "armed", passed: true, detail: "armed"))
        }
        let target = state.ledger.target(excluding: current, deployable: deployable)
        if t.dryRun {
            let would =
                target.map { "would roll back \(current ?? "?") -> \($0.version)" } ?? "would find no known-good target"
            gates.append(GateResult(gate: "dry_run", passed: false, detail: "dry run: \(would)"))
        } else {
            gates.append(GateResult(gate: "dry_run", passed: true, detail: "not a dry run"))
        }
        if let current, let r = state.ledger.release(current) {
            let age = now - r.liveSince
            if age <= config.safety.deployWindow {
                gates.append(
                    GateResult(
                        gate: "deploy_window", passed: true,
                        detail: "\(current) went live \(age) ago (window \(config.safety.deployWindow))"))
            } else {
                gates.append(
                    GateResult(
                        gate: "deploy_window", passed: false,
                        detail:
                            "\(current) went live \(age) ago, outside the deploy window \(config.safety.deployWindow): a rollback would not help"
                    ))
            }
        } else {
            gates.append(GateResult(gate: "deploy_window", passed: false, detail: "the live release is unknown"))
        }
        if let target {
            gates.append(
                GateResult(
                    gate: "target", passed: true,
                    detail:
                        "known-good \(target.version) (known-good since \(target.knownGoodAt.map(\.description) ?? "?"))"
                ))
        } else {
            var why = "no known-good release other than \(current ?? "the current one") that was never rolled back from"
            if deployable != nil { why += " and that the strategy can deploy" }
            gates.append(GateResult(gate: "target", passed: false, detail: why))
        }
        if level == .full {
            if let last = state.rollbackLog.last, now - last.orderedAt < config.safety.cooldown {
                gates.append(
                    GateResult(
                        gate: "cooldown", passed: false,
                        detail: "last rollback \(now - last.orderedAt) ago, cooldown \(config.safety.cooldown)"))
            } else {
                gates.append(
                    GateResult(gate: "cooldown", passed: true, detail: "no rollback within \(config.safety.cooldown)"))
            }
            let used = automaticRollbacks(since: now - config.safety.budgetWindow)
            if used >= config.safety.budgetMax {
                gates.append(
                    GateResult(
                        gate: "budget", passed: false,
                        detail:
                            "\(used) automatic rollbacks in the last \(config.safety.budgetWindow), budget \(config.safety.budgetMax)"
                    ))
            } else {
                gates.append(
                    GateResult(
                        gate: "budget", passed: true,
                        detail:
                            "\(used) of \(config.safety.budgetMax) automatic rollbacks used in \(config.safety.budgetWindow)"
                    ))
            }
        }
        return gates
    }

    public func automaticRollbacks(since: Timestamp) -> Int {
        state.rollbackLog.filter { $0.automatic && $0.orderedAt > since }.count
    }
}
