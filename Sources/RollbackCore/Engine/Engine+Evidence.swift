/// Triggers on counted metrics decide by evidence: an anytime-valid sequential test on the counts behind the
/// samples (docs/decisions.md, "Evidence: the sequential test"), not on how many ticks the ratio looked bad.
extension Engine {
    /// Whether `t` decides by evidence this tick: its metric gave counts, and its condition is one the counts can
    /// answer (`EffectiveTrigger.decidesByEvidence`). A relative condition needs the previous release's counts as
    /// well; without them the values decide, as before.
    func decidesByEvidence(_ t: TriggerDefinition, _ obs: Observation) -> Bool {
        let evidence = config.metric(named: t.metric)?.evidence
        guard EffectiveTrigger.decidesByEvidence(t, evidence: evidence) else { return false }
        switch evidence {
        case .ratio? where t.condition.needsBaseline:
            return obs.counts[t.metric] != nil && (baselineCounts(t)?.trials ?? 0) > 0
        case .ratio?: return obs.counts[t.metric] != nil
        case .slowerThan? where t.condition.needsBaseline:
            return obs.histograms[t.metric] != nil && (baselineHistogram(t)?.last?.count ?? 0) > 0
        case .slowerThan?: return obs.histograms[t.metric] != nil
        case nil: return false
        }
    }

    /// The previous release's counts for the trigger's metric, kept on the live release when it went live.
    func baselineCounts(_ t: TriggerDefinition) -> Counts? {
        state.ledger.current.flatMap { state.ledger.release($0) }?.baselineCounts?[t.metric]
    }

    /// The previous release's observations by latency for the trigger's quantile metric.
    func baselineHistogram(_ t: TriggerDefinition) -> [HistogramBucket]? {
        state.ledger.current.flatMap { state.ledger.release($0) }?.baselineHistograms?[t.metric]
    }

    /// For a relative bound on a latency quantile: the confidence bound of the previous release's quantile (upper
    /// for `aboveBaseline`, lower for `belowBaseline`) at half the trigger's α, and the live bound it gives
    /// (`factor` × it). Nil for other triggers or without a baseline histogram.
    func baselineQuantileBound(_ t: TriggerDefinition) -> (baseline: Double, live: Double)? {
        guard case let .slowerThan(q, _)? = config.metric(named: t.metric)?.evidence,
            let buckets = baselineHistogram(t)
        else { return nil }
        let upper: Bool
        let factor: Double
        switch t.condition {
        case let .aboveBaseline(f): (upper, factor) = (true, f)
        case let .belowBaseline(f): (upper, factor) = (false, f)
        case .above, .below: return nil
        }
        let delta = EvidenceTest.baselineShare(confidence: t.confidence)
        let bound =
            BernoulliMath.quantileBound(buckets, quantile: q, upper: upper, delta: delta) ?? (upper ? .infinity : 0)
        return (bound, factor * bound)
    }

    /// This tick's counts for the trigger's test and the rate they are tested against: the ratio's own counts and
    /// bound, or for a quantile bound T the requests slower than the first bucket boundary at or above T, against
    /// 1 − q. Nil when the tick brought nothing to count.
    func evidenceInput(_ t: TriggerDefinition, _ obs: Observation, threshold: Double)
        -> (counts: Counts, rate: Double, boundary: Double?)?
    {
        switch config.metric(named: t.metric)?.evidence {
        case .ratio?:
            return obs.counts[t.metric].map { ($0, threshold, nil) }
        case let .slowerThan(q, exact)?:
            // A relative bound: the live requests slower than factor × the previous release's quantile bound.
            let bound = baselineQuantileBound(t)?.live ?? threshold
            guard let buckets = obs.histograms[t.metric], let slow = Counts.slower(than: bound, in: buckets)
            else { return nil }
            return (slow.counts, 1 - q, exact ? bound : slow.boundary)
        case nil:
            return nil
        }
    }

    /// K for this trigger: on evidence, one tick with the evidence reached, unless the table set `breaches`.
    func breachesNeeded(_ t: TriggerDefinition, byEvidence: Bool) -> Int {
        byEvidence && !t.breachesGiven ? 1 : t.breaches
    }

    /// R for this trigger: on evidence, one tick with the evidence of recovery, unless the table set `clears`.
    func clearsNeeded(_ t: TriggerDefinition, byEvidence: Bool) -> Int {
        byEvidence && !t.clearsGiven ? 1 : t.clears
    }

    /// Feeds this tick's counts to the trigger's tests and says what they show: a breach once the evidence that
    /// the value is beyond the condition is reached; after a trip, ok once the evidence that it is back within
    /// is reached, and hold until then (a quiet service proves nothing either way); otherwise ok.
    mutating func evidenceVerdict(
        _ t: TriggerDefinition, _ s: inout TriggerState, counts: Counts, threshold: Double, now: Timestamp
    ) -> EvidenceVerdict {
        let release = state.ledger.current
        if s.evidenceRelease != release {
            s.evidence = nil
            s.clearing = nil
            s.insufficientSaid = nil
            s.evidenceRelease = release
            // The tick that first sees a release counts what was served since the previous tick, partly by the
            // release before it: its counts are nobody's evidence. The release's test starts with the next tick.
            return s.phase.isTripped ? .hold : .ok
        }
        let direction: EvidenceTest.Direction
        switch t.condition {
        case .below, .belowBaseline: direction = .below
        case .above, .aboveBaseline: direction = .above
        }
        let relative: (baseline: Counts, factor: Double)?
        switch t.condition {
        case let .aboveBaseline(f), let .belowBaseline(f): relative = baselineCounts(t).map { ($0, f) }
        case .above, .below: relative = nil
        }
        let quantileBound = baselineQuantileBound(t)
        func test(_ d: EvidenceTest.Direction) -> EvidenceTest {
            if let quantileBound {
                return EvidenceTest(
                    threshold: threshold, direction: d, confidence: t.confidence, baselineBound: quantileBound.baseline)
            }
            if let relative {
                return EvidenceTest(
                    baseline: relative.baseline, factor: relative.factor, direction: d, confidence: t.confidence)
            }
            return EvidenceTest(threshold: threshold, direction: d, confidence: t.confidence)
        }
        if s.evidence == nil {
            s.evidence = test(direction)
            s.evidenceSince = now
        }
        s.evidence?.observe(counts, elapsedMs: (now - (s.evidenceSince ?? now)).milliseconds)
        if s.evidence?.reached == true { return .breach }
        guard s.phase.isTripped else { return .ok }
        if s.clearing == nil {
            s.clearing = test(direction == .above ? .below : .above)
            s.clearingSince = now
        }
        s.clearing?.observe(counts, elapsedMs: (now - (s.clearingSince ?? now)).milliseconds)
        return s.clearing?.reached == true ? .ok : .hold
    }

    /// `31 of 53 since v2 went live; 99 % evidence for errors > 10 % reached` — the counts and the strength of
    /// evidence behind a trigger's state, for its events, `status` and the incident report.
    func evidenceText(_ t: TriggerDefinition, _ s: TriggerState) -> String? {
        guard let test = s.evidence else { return nil }
        let since = s.evidenceRelease.map { " since \($0) went live" } ?? ""
        let strength = ValueFormat.percent(test.strength)
        let needed = ValueFormat.percent(t.confidence)
        let slower = s.evidenceBoundary.map { " slower than \(ValueFormat.format($0, unit: .seconds))" } ?? ""
        var against = ""
        if test.baselineBound != nil, let q = baselineQuantileBound(t), let n = baselineHistogram(t)?.last?.count {
            var side = "at least"
            if case .aboveBaseline = t.condition { side = "at most" }
            against =
                " (the previous release's quantile is \(side) \(ValueFormat.format(q.baseline, unit: .seconds)) over \(Int64(n)) requests)"
        } else if test.baselineBound != nil, let b = baselineCounts(t) {
            against = " against the previous release's \(b.events) of \(b.trials)"
        }
        let total = "\(test.total.events) of \(test.total.trials)\(slower)\(since)\(against)"
        if test.reached {
            return "\(total); \(needed) evidence for \(conditionText(t)) reached"
        }
        return "\(total); evidence \(strength), \(needed) needed"
    }

    /// `0 of 57 since v1 went live; 99% evidence of recovery (no longer error_rate > 10%) reached` — the mirror
    /// test after a trip, for the events that clear it. Nil before it began.
    func recoveryText(_ t: TriggerDefinition, _ s: TriggerState) -> String? {
        guard let test = s.clearing else { return nil }
        let since = s.evidenceRelease.map { " since \($0) went live" } ?? ""
        let needed = ValueFormat.percent(t.confidence)
        let total = "\(test.total.events) of \(test.total.trials)\(since)"
        if test.reached {
            return "\(total); \(needed) evidence of recovery (no longer \(conditionText(t))) reached"
        }
        return "\(total); evidence of recovery \(ValueFormat.percent(test.strength)), \(needed) needed"
    }

    /// Journal and webhook fields for the evidence behind an event.
    func evidenceFields(_ s: TriggerState) -> [String: String] {
        guard let test = s.evidence else { return [:] }
        return [
            "evidence_events": String(test.total.events), "evidence_trials": String(test.total.trials),
            "evidence_strength": ValueFormat.trim(test.strength), "evidence_reached": test.reached ? "true" : "false",
        ]
    }
}

/// What one tick's evidence says about a trigger.
enum EvidenceVerdict {
    case breach, ok, hold
}
