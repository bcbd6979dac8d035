/// One row of the effective trigger table, as `rollbackd check` prints it.
public struct EffectiveTrigger: Sendable, Equatable {
    public var trigger: TriggerDefinition
    /// After the global cap.
    public var automation: AutomationLevel
    /// interval × consecutive breaches.
    public var detectionTime: Interval
    public var conditionText: String

    public init(trigger: TriggerDefinition, thresholds: Thresholds) {
        self.trigger = trigger
        self.automation = trigger.automation.capped(by: thresholds.automation)
        let unit = thresholds.metric(named: trigger.metric)?.unit ?? .number
        self.conditionText = Self.describe(trigger.condition, metric: trigger.metric, unit: unit)
        let evidence = thresholds.metric(named: trigger.metric)?.evidence
        self.rule = Self.ruleText(trigger, conditionText: conditionText, evidence: evidence)
        self.ticksNeeded =
            Self.decidesByEvidence(trigger, evidence: evidence) && !trigger.breachesGiven ? 1 : trigger.breaches
        self.detectionTime = thresholds.interval * ticksNeeded
    }

    /// How the trigger decides: `evidence: error_rate > 10% at 99%` on a counted metric with an absolute bound
    /// (plus `and 3 breaches in a row` when the table sets `breaches`), otherwise `consecutive: 3 breaches`.
    public var rule: String

    /// The fewest ticks before the trigger can fire: K, or 1 for a trigger deciding on evidence alone (which
    /// then fires at the first tick whose counts are evidence enough: at once on a flood, later on a trickle).
    public var ticksNeeded: Int

    /// The engine's rule (`Engine.decidesByEvidence`), as far as the configuration can tell it: a ratio with counts
    /// and an absolute bound strictly between 0 and 1 or a factor of the previous release's, or a scraped quantile
    /// with buckets and an upper bound.
    static func decidesByEvidence(_ t: TriggerDefinition, evidence: MetricEvidence?) -> Bool {
        switch (evidence, t.condition) {
        case let (.ratio?, .above(x)), let (.ratio?, .below(x)): return x > 0 && x < 1
        case let (.ratio?, .aboveBaseline(f)), let (.ratio?, .belowBaseline(f)): return f > 0 && f.isFinite
        case let (.slowerThan?, .above(x)): return x > 0 && x.isFinite
        case let (.slowerThan?, .aboveBaseline(f)), let (.slowerThan?, .belowBaseline(f)): return f > 0 && f.isFinite
        default: return false
        }
    }

    static func ruleText(_ t: TriggerDefinition, conditionText: String, evidence: MetricEvidence?) -> String {
        let consecutive = t.breaches == 1 ? "1 breach" : "\(t.breaches) breaches"
        guard decidesByEvidence(t, evidence: evidence) else { return "consecutive: " + consecutive }
        var text = "evidence: \(conditionText) at \(ValueFormat.percent(t.confidence))"
        if case let .slowerThan(q, _)? = evidence, case let .aboveBaseline(f) = t.condition {
            text +=
                " (more than \(ValueFormat.percent(1 - q)) of the live requests slower than \(ValueFormat.percent(f)) of the previous release's quantile, taken at its upper confidence bound)"
        } else if case let .slowerThan(q, _)? = evidence, case let .belowBaseline(f) = t.condition {
            text +=
                " (fewer than \(ValueFormat.percent(1 - q)) of the live requests slower than \(ValueFormat.percent(f)) of the previous release's quantile, taken at its lower confidence bound)"
        } else if t.condition.needsBaseline {
            text += " (the live release's counts against the previous release's, with its uncertainty)"
        }
        if case let .slowerThan(q, exact)? = evidence, case let .above(x) = t.condition {
            text +=
                exact
                ? " (more than \(ValueFormat.percent(1 - q)) of probes slower than \(ValueFormat.format(x, unit: .seconds)))"
                : " (more than \(ValueFormat.percent(1 - q)) of requests slower than the first bucket boundary at or above \(ValueFormat.format(x, unit: .seconds)))"
        }
        return t.breachesGiven ? text + " and \(consecutive) in a row" : text
    }

    public static func describe(_ c: Condition, metric: String, unit: MetricUnit) -> String {
        switch c {
        case let .above(v): return "\(metric) > \(ValueFormat.format(v, unit: unit))"
        case let .below(v): return "\(metric) < \(ValueFormat.format(v, unit: unit))"
        case let .aboveBaseline(f): return "\(metric) > \(ValueFormat.percent(f)) of baseline"
        case let .belowBaseline(f): return "\(metric) < \(ValueFormat.percent(f)) of baseline"
        }
    }
}

extension Thresholds {
    /// The effective table in file order.
    public var effectiveTriggers: [EffectiveTrigger] {
        triggers.map { EffectiveTrigger(trigger: $0, thresholds: self) }
    }
}
