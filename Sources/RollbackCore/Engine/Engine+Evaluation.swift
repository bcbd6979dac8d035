extension Engine {
    mutating func observeVersion(_ obs: Observation, out: inout EngineOutput) {
        let now = obs.at
        guard let version = obs.version else { return }
        guard version != state.ledger.current else { return }
        if let active = state.activeRollback, active.to == version {
            // Our own rollback made it live; rollbackFinished records that.
            return
        }
        if state.approvals.contains(where: { $0.planStep != nil && $0.to == version }) {
            // Our own plan, stopped before a step that waits for a person, made it live.
            return
        }
        let previous = state.ledger.current
        var baseline: [String: Double] = [:]
        var baselineCounts: [String: Counts] = [:]
        var baselineHistograms: [String: [HistogramBucket]] = [:]
        if let previous, let prev = state.ledger.release(previous) {
            baseline = prev.baseline
            baselineCounts = prev.baselineCounts ?? [:]
            baselineHistograms = prev.baselineHistograms ?? [:]
            for (metric, slots) in state.recentHistograms ?? [:] {
                let sum = slots.reduce([HistogramBucket]()) { HistogramBucket.sum($0, $1.buckets) }
                if (sum.last?.count ?? 0) > 0 { baselineHistograms[metric] = sum }
            }
            for (metric, values) in state.recent where values.count >= 3 {
                baseline[metric] = Self.median(values.map(\.value))
            }
            for (metric, ticks) in state.recentCounts ?? [:] {
                let sum = ticks.reduce(Counts.zero) { $0 + $1.counts }
                if sum.trials > 0 { baselineCounts[metric] = sum }
            }
        }
        if state.ledger.release(version) != nil {
            state.ledger.update(version) { r in
                r.liveSince = now
                r.cleanSince = nil
                if previous != nil {
                    r.baseline = baseline
                    r.baselineCounts = baselineCounts
                    r.baselineHistograms = baselineHistograms
                }
            }
        } else {
            state.ledger.releases.append(
                Release(
                    version: version, firstSeenAt: now, liveSince: now, cleanSince: nil,
                    knownGoodAt: nil, rolledBackFromAt: nil, baseline: baseline, baselineCounts: baselineCounts,
                    baselineHistograms: baselineHistograms))
        }
        state.ledger.current = version
        state.recent = [:]
        state.recentCounts = nil
        state.recentHistograms = nil
        // The new release earns its own breaches: a trigger tripped by the old one does not count against it.
        for name in state.triggers.keys { state.triggers[name] = TriggerState() }
        for inc in state.openIncidents where inc.status == .open || inc.status == .awaitingApproval {
            closeIncident(inc.id, outcome: .superseded, now: now, text: "release \(version) went live", out: &out)
        }
        state.approvals.removeAll()
        let from = previous.map { " (was \($0))" } ?? ""
        out.events.append(
            Event(
                kind: .releaseDeployed, at: now, message: "Release \(version) is live\(from).",
                severity: .low, fromVersion: previous, toVersion: version))
    }

    mutating func trackBlindness(_ obs: Observation, out: inout EngineOutput) {
        let now = obs.at
        let watched = Set(config.triggers.filter { $0.automation.capped(by: config.automation) != .off }.map(\.metric))
        var inputs: [(String, String?)] = watched.sorted().map {
            ($0, obs.samples[$0]?.reason ?? (obs.samples[$0] == nil ? "no sample" : nil))
        }
        inputs.append(("version", obs.version == nil ? (obs.versionReason ?? "version unknown") : nil))
        for (metric, reason) in inputs {
            var b = state.blind[metric] ?? BlindState()
            if let reason {
                b.consecutiveNoData += 1
                b.lastReason = reason
                if b.consecutiveNoData == config.safety.blindAfter {
                    b.blindSince = now
                    out.events.append(
                        Event(
                            kind: .sourceBlind, at: now,
                            message:
                                "Watchdog blind: \(metric) has had no data for \(b.consecutiveNoData) ticks (\(reason)). No rollback is made on missing data.",
                            severity: .high, metric: metric, reason: reason))
                }
            } else {
                if let since = b.blindSince {
                    out.events.append(
                        Event(
                            kind: .sourceRecovered, at: now,
                            message: "\(metric) has data again after being blind since \(since).",
                            severity: .low, metric: metric, reason: b.lastReason))
                }
                b = BlindState()
            }
            state.blind[metric] = b
        }
    }

    mutating func recordRecent(_ obs: Observation) {
        let cutoff = obs.at - config.safety.baselineWindow
        for (metric, sample) in obs.samples {
            guard let v = sample.number, v.isFinite else { continue }
            var list = state.recent[metric] ?? []
            list.append(TimedValue(at: obs.at, value: v))
            list.removeAll { $0.at < cutoff }
            if list.count > 10_000 { list.removeFirst(list.count - 10_000) }
            state.recent[metric] = list
        }
        for (metric, counts) in obs.counts where counts.trials > 0 {
            var all = state.recentCounts ?? [:]
            var list = all[metric] ?? []
            list.append(TimedCounts(at: obs.at, counts: counts))
            list.removeAll { $0.at < cutoff }
            if list.count > 10_000 { list.removeFirst(list.count - 10_000) }
            all[metric] = list
            state.recentCounts = all
        }
        // Bucket counts are bigger than counts: one entry per twentieth of the window, not per tick.
        let slotMs = max(1, config.safety.baselineWindow.milliseconds / 20)
        for (metric, buckets) in obs.histograms where (buckets.last?.count ?? 0) > 0 {
            var all = state.recentHistograms ?? [:]
            var list = all[metric] ?? []
            if let last = list.last, (obs.at - last.at).milliseconds < slotMs {
                list[list.count - 1].buckets = HistogramBucket.sum(last.buckets, buckets)
            } else {
                list.append(TimedBuckets(at: obs.at, buckets: buckets))
            }
            list.removeAll { $0.at < cutoff }
            all[metric] = list
            state.recentHistograms = all
        }
    }

    /// Hysteresis: K consecutive breaches to fire, R consecutive oks to clear; no-data follows the trigger's policy.
    mutating func evaluate(_ t: TriggerDefinition, obs: Observation, out: inout EngineOutput) {
        let now = obs.at
        var s = state.triggers[t.name] ?? TriggerState()
        let sample = obs.samples[t.metric] ?? .noData(reason: "no sample for \(t.metric)")
        enum Verdict { case breach, ok, hold }
        var verdict: Verdict
        let byEvidence = decidesByEvidence(t, obs)
        let k = breachesNeeded(t, byEvidence: byEvidence)
        let r = clearsNeeded(t, byEvidence: byEvidence)
        var sayInsufficient = false
        switch sample {
        case let .value(v) where v.isFinite:
            let baseline = state.ledger.current.flatMap { state.ledger.release($0) }?.baseline[t.metric]
            if let threshold = t.condition.threshold(baseline: baseline) {
                let valueBreach = t.condition.isBreached(by: v, threshold: threshold)
                s.lastValue = v
                s.lastThreshold = threshold
                s.lastReason = nil
                if byEvidence, let input = evidenceInput(t, obs, threshold: threshold) {
                    // A bound above every finite bucket counts nothing slower: there is no boundary to name.
                    s.evidenceBoundary = input.boundary.flatMap { $0.isFinite ? $0 : nil }
                    switch evidenceVerdict(t, &s, counts: input.counts, threshold: input.rate, now: now) {
                    case .breach: verdict = .breach
                    case .ok: verdict = .ok
                    case .hold: verdict = .hold
                    }
                    // The ratio alone would have breached: say once why nothing happens. On a ratio, the ratio of
                    // the counts the test weighed (the one the message shows).
                    var looksBad = valueBreach
                    if case .ratio? = config.metric(named: t.metric)?.evidence, let r = s.evidence?.total.ratio {
                        looksBad = t.condition.isBreached(by: r, threshold: threshold)
                    }
                    sayInsufficient =
                        looksBad && verdict != .breach && !s.phase.isTripped && s.insufficientSaid != true
                        && s.evidence?.total.trials ?? 0 > 0
                } else {
                    verdict = valueBreach ? .breach : .ok
                }
            } else {
                // A relative condition without a baseline cannot be judged: hold, whatever the no-data policy.
                verdict = .hold
                s.lastValue = v
                s.lastReason = "no baseline for \(t.metric) yet"
            }
        case .value:
            verdict = .hold
            s.lastReason = "value is not a finite number"
        case let .noData(reason):
            s.lastReason = reason
            switch t.noData {
            case .hold: verdict = .hold
            case .breach: verdict = .breach
            case .ok: verdict = .ok
            }
        }
        let level = effectiveAutomation(t, at: now)
        func event(_ kind: EventKind, _ message: String, _ severity: Severity) -> Event {
            Event(
                kind: kind, at: now, message: message, severity: severity, trigger: t.name, automation: level,
                metric: t.metric, value: s.lastValue, threshold: s.lastThreshold,
                fromVersion: state.ledger.current, reason: s.lastReason, dryRun: t.dryRun ? true : nil,
                extra: byEvidence ? evidenceFields(s) : [:])
        }
        var valueText =
            s.lastValue.map { ValueFormat.format($0, unit: config.metric(named: t.metric)?.unit ?? .number) }
            ?? "no data"
        let recovering = byEvidence && verdict == .ok && s.phase.isTripped && s.clearing != nil
        // On a ratio decided by evidence the number shown is the rate of the counts the test weighed (since the
        // release went live), not the window's, which may still hold the previous release's requests.
        if byEvidence, case .ratio? = config.metric(named: t.metric)?.evidence,
            let rate = (recovering ? s.clearing : s.evidence)?.total.ratio
        {
            valueText = ValueFormat.format(rate, unit: .ratio)
        }
        if recovering, let recovery = recoveryText(t, s) {
            // Clearing a tripped trigger: the evidence that counts is the recovery test's.
            valueText += " (\(recovery))"
        } else if byEvidence, let evidence = evidenceText(t, s) {
            valueText += " (\(evidence))"
        }
        if sayInsufficient {
            s.insufficientSaid = true
            out.events.append(
                event(
                    .triggerPending,
                    "Trigger \(t.name) is not firing: \(valueText) breaches \(conditionText(t)), but that is insufficient evidence so far.",
                    .low))
        }
        switch (s.phase, verdict) {
        case (_, .hold):
            break
        case (.ok, .breach):
            s.firstBreachAt = now
            s.count = 1
            if k <= 1 {
                trip(t, &s, now: now)
                out.events.append(
                    event(
                        .triggerFiring,
                        "Trigger \(t.name) is firing: \(valueText) breaches \(conditionText(t)) (1 of 1).", t.severity))
            } else {
                s.phase = .pending
                out.events.append(
                    event(
                        .triggerPending,
                        "Trigger \(t.name) is pending: \(valueText) breaches \(conditionText(t)) (1 of \(k)).",
                        .low))
            }
        case (.pending, .breach):
            s.count += 1
            if s.count >= k {
                trip(t, &s, now: now)
                out.events.append(
                    event(
                        .triggerFiring,
                        "Trigger \(t.name) is firing: \(valueText) breaches \(conditionText(t)) for \(k) consecutive samples.",
                        t.severity))
            }
        case (.pending, .ok):
            s = s.phaseReset()
        case (.firing, .ok):
            s.count = 1
            if r <= 1 {
                s = s.phaseReset()
                out.events.append(event(.triggerCleared, "Trigger \(t.name) cleared: \(valueText).", .low))
            } else {
                s.phase = .recovering
                out.events.append(
                    event(
                        .triggerRecovering, "Trigger \(t.name) is recovering: \(valueText) (1 of \(r) oks).",
                        .low))
            }
        case (.recovering, .ok):
            s.count += 1
            if s.count >= r {
                s = s.phaseReset()
                out.events.append(
                    event(
                        .triggerCleared,
                        "Trigger \(t.name) cleared after \(r) consecutive ok samples: \(valueText).", .low))
            }
        case (.recovering, .breach):
            s.phase = .firing
            s.count = 0
            s.trippedAt = now
            out.events.append(
                event(
                    .triggerFiring, "Trigger \(t.name) is firing again: \(valueText) breaches \(conditionText(t)).",
                    t.severity))
        case (.firing, .breach), (.ok, .ok):
            break
        }
        state.triggers[t.name] = s
        // A trip belongs to the release that was live when it tripped: a trigger still firing from the release
        // rolled back from (its window not yet drained) opens no incident against the target.
        if s.phase == .firing, let current = state.ledger.current, let live = state.ledger.release(current)?.liveSince,
            (s.trippedAt ?? now) >= live
        {
            attachTrip(t, s, release: current, now: now, out: &out)
        }
    }

    private func trip(_ t: TriggerDefinition, _ s: inout TriggerState, now: Timestamp) {
        s.phase = .firing
        s.count = 0
        s.trippedAt = now
    }

    func conditionText(_ t: TriggerDefinition) -> String {
        EffectiveTrigger.describe(t.condition, metric: t.metric, unit: config.metric(named: t.metric)?.unit ?? .number)
    }

    /// Makes sure the release has an open incident that records this trip.
    private mutating func attachTrip(
        _ t: TriggerDefinition, _ s: TriggerState, release: String, now: Timestamp, out: inout EngineOutput
    ) {
        let snapshot = TripSnapshot(
            trigger: t.name, metric: t.metric, severity: t.severity,
            automation: effectiveAutomation(t, at: now), value: s.lastValue,
            threshold: s.lastThreshold, firstBreachAt: s.firstBreachAt ?? now,
            trippedAt: s.trippedAt ?? now, evidence: s.evidence.flatMap { _ in evidenceText(t, s) })
        if let i = state.incidents.firstIndex(where: { $0.fromVersion == release && $0.status != .closed }) {
            if !state.incidents[i].trips.contains(where: { $0.trigger == t.name && $0.trippedAt == snapshot.trippedAt })
            {
                state.incidents[i].trips.append(snapshot)
                state.incidents[i].timeline.append(
                    TimelineEntry(at: snapshot.firstBreachAt, kind: .triggerPending, text: "first breach of \(t.name)"))
                state.incidents[i].timeline.append(
                    TimelineEntry(
                        at: snapshot.trippedAt, kind: .triggerFiring, text: "\(t.name) tripped: \(conditionText(t))"))
            }
            return
        }
        var id = "INC-\(now.compactUTC)-\(Self.sanitize(release))"
        var n = 2
        while state.incidents.contains(where: { $0.id == id }) {
            id = "INC-\(now.compactUTC)-\(Self.sanitize(release))-\(n)"
            n += 1
        }
        let incident = Incident(
            id: id, service: config.service, fromVersion: release, toVersion: nil, openedAt: now,
            closedAt: nil, status: .open, outcome: nil, trips: [snapshot], gates: [],
            decision: nil, decisionReason: nil, approver: nil, rollbackStartedAt: nil,
            rollbackFinishedAt: nil, verifiedAt: nil,
            timeline: [
                TimelineEntry(at: snapshot.firstBreachAt, kind: .triggerPending, text: "first breach of \(t.name)"),
                TimelineEntry(
                    at: snapshot.trippedAt, kind: .triggerFiring, text: "\(t.name) tripped: \(conditionText(t))"),
                TimelineEntry(at: now, kind: .incidentOpened, text: "incident opened for release \(release)"),
            ])
        state.incidents.append(incident)
        out.events.append(
            Event(
                kind: .incidentOpened, at: now,
                message: "Incident \(id) opened for release \(release): trigger \(t.name) tripped.",
                severity: t.severity, incident: id, trigger: t.name, metric: t.metric,
                value: s.lastValue, threshold: s.lastThreshold, fromVersion: release))
        pruneClosedIncidents()
    }

    private mutating func pruneClosedIncidents() {
        let closed = state.incidents.filter { $0.status == .closed }
        if closed.count > 50 {
            let drop = Set(closed.prefix(closed.count - 50).map(\.id))
            state.incidents.removeAll { drop.contains($0.id) }
        }
    }

    static func sanitize(_ s: String) -> String {
        let cleaned = String(
            s.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") ? $0 : "_" })
        return String(cleaned.prefix(64))
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }

    /// Known-good: live for `soak` with no tripped trigger and no blind metric, granted only while no trigger is
    /// pending.
    mutating func updateSoak(now: Timestamp, out: inout EngineOutput) {
        guard let current = state.ledger.current, let release = state.ledger.release(current) else { return }
        let tripped = config.triggers.contains { t in
            t.automation.capped(by: config.automation) != .off && (state.triggers[t.name]?.phase.isTripped ?? false)
        }
        let blind = state.blind.values.contains { $0.blindSince != nil }
        if tripped || blind {
            if release.cleanSince != nil { state.ledger.update(current) { $0.cleanSince = nil } }
            return
        }
        guard let since = release.cleanSince else {
            state.ledger.update(current) { $0.cleanSince = now }
            return
        }
        // Never at a moment a trigger is pending: a bad release whose detection takes longer than the soak would
        // otherwise become a rollback target a tick before it trips.
        let pending = config.triggers.contains { t in
            t.automation.capped(by: config.automation) != .off && state.triggers[t.name]?.phase == .pending
        }
        if release.knownGoodAt == nil, !pending, now - since >= config.safety.soak {
            state.ledger.update(current) { $0.knownGoodAt = now }
            out.events.append(
                Event(
                    kind: .releaseKnownGood, at: now,
                    message:
                        "Release \(current) is known-good: live \(now - since) with no tripped trigger (soak \(config.safety.soak)).",
                    severity: .low, toVersion: current))
        }
    }
}

extension TriggerState {
    init(lastValue: Double?, lastThreshold: Double?) {
        self.init()
        self.lastValue = lastValue
        self.lastThreshold = lastThreshold
    }

    /// Back to `ok`, keeping the last value and the release's evidence (it is cumulative: a pending trigger that
    /// saw one good tick has not lost what it counted); the clearing test starts again at the next trip.
    func phaseReset() -> TriggerState {
        var s = TriggerState(lastValue: lastValue, lastThreshold: lastThreshold)
        s.evidence = evidence
        s.evidenceSince = evidenceSince
        s.evidenceRelease = evidenceRelease
        s.insufficientSaid = insufficientSaid
        return s
    }
}
