public enum Severity: String, Sendable, CaseIterable, Comparable, Codable {
    case low, medium, high, critical

    private var rank: Int {
        switch self {
        case .low: return 0
        case .medium: return 1
        case .high: return 2
        case .critical: return 3
        }
    }
    public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
}

/// How much rollbackd may do on its own. Ordered `off < manual < semi < full`; a cap takes the lower of two.
public enum AutomationLevel: String, Sendable, CaseIterable, Comparable, Codable {
    case full, semi, manual, off

    private var rank: Int {
        switch self {
        case .off: return 0
        case .manual: return 1
        case .semi: return 2
        case .full: return 3
        }
    }
    public static func < (a: AutomationLevel, b: AutomationLevel) -> Bool { a.rank < b.rank }

    /// The level in force when `self` is limited by `cap`.
    public func capped(by cap: AutomationLevel) -> AutomationLevel { Swift.min(self, cap) }
}

/// What a no-data sample means to a trigger. `hold` (default): neither breach nor ok.
public enum NoDataPolicy: String, Sendable, CaseIterable, Codable {
    case hold, breach, ok
}

/// A trigger's condition on its metric's value.
public enum Condition: Sendable, Equatable {
    case above(Double)
    case below(Double)
    /// value > factor × baseline (baseline from the previous release).
    case aboveBaseline(Double)
    /// value < factor × baseline.
    case belowBaseline(Double)

    public var needsBaseline: Bool {
        switch self {
        case .aboveBaseline, .belowBaseline: return true
        default: return false
        }
    }

    /// The absolute threshold, given a baseline when the condition is relative.
    public func threshold(baseline: Double?) -> Double? {
        switch self {
        case let .above(v), let .below(v): return v
        case let .aboveBaseline(f), let .belowBaseline(f): return baseline.map { $0 * f }
        }
    }

    public func isBreached(by value: Double, threshold: Double) -> Bool {
        switch self {
        case .above, .aboveBaseline: return value > threshold
        case .below, .belowBaseline: return value < threshold
        }
    }

    static let keys = ["above", "below", "aboveBaseline", "belowBaseline"]
}

/// How fast the table promises a response.
public enum ResponseBudget: Sendable, Equatable, CustomStringConvertible {
    case immediate
    case within(Interval)

    public var description: String {
        switch self {
        case .immediate: return "immediate"
        case let .within(d): return d.description
        }
    }
}

public struct TriggerDefinition: Sendable, Equatable {
    public var name: String
    public var description: String?
    public var metric: String
    public var condition: Condition
    /// K: consecutive breaches before the trigger fires.
    public var breaches: Int
    /// R: consecutive oks before a firing trigger clears.
    public var clears: Int
    public var noData: NoDataPolicy
    public var severity: Severity
    public var respondWithin: ResponseBudget
    public var automation: AutomationLevel
    /// Evaluate and report as usual but never execute: decisions become "dry run: would roll back …".
    public var dryRun: Bool
    /// On a counted metric (errors of requests, unhealthy of probed instances): the confidence the sequential test
    /// must reach before the trigger fires (1 − α; see docs/decisions.md).
    public var confidence: Double
    /// Whether the table set `breaches` / `clears` itself. On a counted metric the evidence decides alone unless
    /// they were set: a trigger with both waits for both.
    public var breachesGiven: Bool
    public var clearsGiven: Bool

    public init(
        name: String, description: String? = nil, metric: String, condition: Condition, breaches: Int = 3,
        clears: Int = 5, noData: NoDataPolicy = .hold, severity: Severity, respondWithin: ResponseBudget,
        automation: AutomationLevel, dryRun: Bool = false, confidence: Double = 0.99, breachesGiven: Bool = true,
        clearsGiven: Bool = true
    ) {
        self.name = name
        self.description = description
        self.metric = metric
        self.condition = condition
        self.breaches = breaches
        self.clears = clears
        self.noData = noData
        self.severity = severity
        self.respondWithin = respondWithin
        self.automation = automation
        self.dryRun = dryRun
        self.confidence = confidence
        self.breachesGiven = breachesGiven
        self.clearsGiven = clearsGiven
    }
}

extension TriggerDefinition {
    static func read(_ value: JSONValue, path: String, sink: IssueSink) -> TriggerDefinition? {
        guard var obj = ObjectReader(value, path: path, sink: sink) else { return nil }
        let name = obj.read("name", required: true, Read.nonEmptyString)
        if let name, !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) {
            sink.error(
                obj.childPath("name"),
                "\(JSONValue.quote(name)) may use only letters, digits, '-', '_' and '.' (it becomes a journald field value)"
            )
        }
        let description = obj.read("description", Read.string)
        let metric = obj.read("metric", required: true, Read.nonEmptyString)
        let condition = obj.read("condition", required: true) { v, p, s in Self.readCondition(v, p, s) }
        let breachesRead = obj.read("breaches", Read.int(min: 1, max: 1000))
        let clearsRead = obj.read("clears", Read.int(min: 1, max: 1000))
        let confidence = obj.read("confidence") { v, p, s -> Double? in
            guard let x = Read.number(v, p, s) else { return nil }
            guard x >= 0.5 && x < 1 else {
                s.error(p, "\(JSONValue.format(number: x)) is not a confidence between 0.5 and 1 (e.g. 0.99)")
                return nil
            }
            return x
        }
        let noData = obj.read("noData", Read.choice(NoDataPolicy.self)) ?? .hold
        let severity = obj.read("severity", required: true, Read.choice(Severity.self))
        let respond = obj.read("respondWithin", required: true) { v, p, s -> ResponseBudget? in
            if case .string("immediate") = v { return .immediate }
            guard case let .string(text) = v else {
                s.error(p, "expected \"immediate\" or a duration string such as \"2m\", found \(v.typeName)")
                return nil
            }
            guard Interval(parsing: text) != nil else {
                s.error(
                    p,
                    "\(JSONValue.quote(text)) is neither \"immediate\" nor a duration such as \"30s\", \"2m\", \"1h\"")
                return nil
            }
            return Read.positiveDuration(v, p, s).map { .within($0) }
        }
        let automation = obj.read("automation", required: true, Read.choice(AutomationLevel.self))
        let dryRun = obj.read("dryRun", Read.bool) ?? false
        obj.finish()
        guard let name, let metric, let condition, let severity, let respond, let automation else { return nil }
        return TriggerDefinition(
            name: name, description: description, metric: metric, condition: condition,
            breaches: breachesRead ?? 3, clears: clearsRead ?? 5, noData: noData, severity: severity,
            respondWithin: respond, automation: automation, dryRun: dryRun, confidence: confidence ?? 0.99,
            breachesGiven: breachesRead != nil, clearsGiven: clearsRead != nil)
    }

    static func readCondition(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> Condition? {
        guard var obj = ObjectReader(v, path: path, sink: sink) else { return nil }
        var found: [Condition] = []
        if let x = obj.read("above", Read.number) { found.append(.above(x)) }
        if let x = obj.read("below", Read.number) { found.append(.below(x)) }
        if let x = obj.read("aboveBaseline", Read.positiveNumber) {
            if x < 1 {
                sink.warn(
                    obj.childPath("aboveBaseline"),
                    "\(JSONValue.format(number: x)) is below 1: the trigger breaches while the metric is still better than its baseline"
                )
            }
            found.append(.aboveBaseline(x))
        }
        if let x = obj.read("belowBaseline", Read.positiveNumber) {
            if x > 1 {
                sink.warn(
                    obj.childPath("belowBaseline"),
                    "\(JSONValue.format(number: x)) is above 1: the trigger breaches while the metric is still better than its baseline"
                )
            }
            found.append(.belowBaseline(x))
        }
        obj.finish()
        let given = obj.members.filter { Condition.keys.contains($0.key) }.count
        if given != 1 {
            sink.error(path, "needs exactly one of above, below, aboveBaseline, belowBaseline (found \(given))")
            return nil
        }
        return found.first
    }
}
