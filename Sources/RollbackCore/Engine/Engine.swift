/// The decision engine: pure and deterministic. Feed it observations and commands with their timestamps; it
/// returns events and at most one rollback order. It never reads a clock, a file or the network.
public struct Engine: Sendable {
    public private(set) var config: Thresholds
    public internal(set) var state: EngineState

    public init(config: Thresholds, state: EngineState = EngineState()) {
        self.config = config
        self.state = state
    }

    // MARK: configuration

    /// Swaps in a new configuration. Trigger state survives for triggers that still exist (same name and metric).
    public mutating func reconfigure(_ new: Thresholds) {
        var kept: [String: TriggerState] = [:]
        for t in new.triggers {
            if let old = config.trigger(named: t.name), old.metric == t.metric, let s = state.triggers[t.name] {
                kept[t.name] = s
            }
        }
        state.triggers = kept
        config = new
    }

    /// Effective automation of a trigger now: its level, limited by the global cap and a maintenance pause.
    public func effectiveAutomation(_ t: TriggerDefinition, at now: Timestamp) -> AutomationLevel {
        var level = t.automation.capped(by: config.automation)
        if isPaused(at: now) { level = level.capped(by: .manual) }
        return level
    }

    public func isPaused(at now: Timestamp) -> Bool {
        guard let until = state.pausedUntil else { return false }
        return now < until
    }

    // MARK: ticks

    public mutating func tick(_ obs: Observation, deployable: Set<String>? = nil) -> EngineOutput {
        var out = EngineOutput()
        let now = obs.at
        resumeIfPauseExpired(now: now, out: &out)
        observeVersion(obs, out: &out)
        trackBlindness(obs, out: &out)
        recordRecent(obs)
        for t in config.triggers where t.automation.capped(by: config.automation) != .off {
            evaluate(t, obs: obs, out: &out)
        }
        updateSoak(now: now, out: &out)
        if var v = state.verification {
            v.smokeFailures.append(contentsOf: obs.smokeFailures)
            v.ticks = (v.ticks ?? 0) + 1
            state.verification = v
            if verificationIsDue(v, now: now) { finishVerification(now: now, out: &out) }
        }
        if state.activeRollback == nil && state.verification == nil {
            decide(now: now, deployable: deployable, out: &out)
        }
        closeRecoveredIncidents(now: now, out: &out)
        return out
    }

    private mutating func resumeIfPauseExpired(now: Timestamp, out: inout EngineOutput) {
        if let until = state.pausedUntil, now >= until {
            state.pausedUntil = nil
            state.pausedBy = nil
            out.events.append(
                Event(
                    kind: .automationResumed, at: now,
                    message: "Maintenance pause ended at \(until); automation levels are back to the table's.",
                    severity: .medium, reason: "pause expired"))
        }
    }
}
