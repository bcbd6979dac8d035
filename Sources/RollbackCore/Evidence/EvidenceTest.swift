import RealModule

/// An anytime-valid sequential test that a counted rate is beyond a threshold, fed one tick of counts at a time.
///
/// The question asked of `events` of `trials` is one-sided: for ``Direction/above``, is the true rate `p` above
/// the threshold `p0` (null hypothesis `p ≤ p0`); for ``Direction/below``, is it below (null `p ≥ p0`: proving
/// a recovery). The test is **reached** when the evidence `M` reaches `1/α`, `α = 1 − confidence`, and for a
/// rate that is at the threshold or on the null side of it, the probability that `M` *ever* reaches `1/α` is at
/// most `α`, however many ticks look at it and however the requests are spread over ticks.
///
/// `M` is a mixture of likelihood ratios: over a fixed grid of alternative rates on the far side of `p0` (steps
/// in log-odds, equal weights) and over the time the change began (Shiryaev–Roberts restarts, with prior weight
/// `1/(k(k+1))` on the `k`-th 10-second slot since the test began). So a release that turns bad after a good
/// hour is caught without the good hour's evidence against it; the restart costs `log(k(k+1))` nats. The state
/// is one log-sum per alternative (plus the counts for messages), and ``observe(_:elapsedMs:)`` is O(grid).
/// docs/decisions.md, "Evidence: the sequential test", has the derivation and the measured error rates.
///
/// A P95 latency bound `T` is tested as "more than 5 % of requests are slower than `T`": `threshold` 0.05 on
/// (slower than `T`, observed). Independence is assumed between trials; repeated probes of one instance are
/// correlated and overstate the evidence.
public struct EvidenceTest: Sendable, Equatable {
    public enum Direction: String, Sendable, Codable, CaseIterable {
        /// Evidence that the rate is above the threshold (null: at or below it).
        case above
        /// Evidence that the rate is below the threshold (null: at or above it).
        case below
    }

    /// The side of ``threshold`` the test looks for.
    public let direction: Direction
    /// The rate `p0` tested against, kept inside `[1e-9, 1 − 1e-9]`. For a baseline-relative test, the factor
    /// times ``baselineBound``.
    public let threshold: Double
    /// The overall confidence; the test is reached at evidence `1/(1 − confidence)`, or at `2/(1 − confidence)`
    /// for a baseline-relative test, which spends the other half on the baseline's bound.
    public let confidence: Double
    /// For a baseline-relative test: the confidence bound of the baseline's rate (upper for `above`, lower for
    /// `below`) that ``threshold`` was derived from, or of the baseline's latency quantile (in seconds) that the
    /// bound on the live latencies was derived from. Nil otherwise.
    public let baselineBound: Double?
    /// Everything observed since the test began.
    public private(set) var total: Counts = .zero

    /// The restart slots credited so far (slot `k` covers elapsed `[(k−1)·10 s, k·10 s)`); 0 before the first tick.
    private var creditedSlots: Int64 = 0
    /// One per alternative, in ``alternatives`` order; empty before the first observation.
    private var tracks: [Track] = []
    /// `log(1/α)` of the sequential part.
    private let logBarrier: Double
    /// Derived from `threshold` and `direction`: never persisted, rebuilt on decoding.
    private let alternatives: [Alternative]

    /// The restarts' time grid: candidate change times are the first tick of each slot of this length.
    public static let restartSlotMs: Int64 = 10_000
    /// The alternatives' distances from the threshold in log-odds (for `below`, negated). Near 0 these are rate
    /// ratios of about 1.35, 2, 3.7, 9, 45 and 665 (with every alternative strictly inside (0, 1)).
    static let logOddsSteps: [Double] = [0.3, 0.7, 1.3, 2.2, 3.8, 6.5]
    /// How close to 0 or 1 a threshold may be.
    static let thresholdMargin = 1e-9

    /// A test of the rate against a fixed threshold. `confidence` is clamped into `[0.5, 1 − 1e-12]`; a NaN
    /// threshold gives a test that cannot be reached in practice (as a threshold of 1 for `above`).
    public init(threshold: Double, direction: Direction, confidence: Double = 0.99) {
        let c = Self.clampConfidence(confidence)
        self.init(
            p0: threshold, direction: direction, confidence: c, logBarrier: Double.log(1 / (1 - c)),
            baselineBound: nil)
    }

    /// A test of the rate against `factor` times a baseline's rate known only from `baseline` counts (the
    /// previous release's, fixed when the test begins): for `above`, "more than `factor` × the baseline rate"
    /// (null `p ≤ factor · p_base`); for `below`, "less than" it.
    ///
    /// Half of `α` goes to a Chernoff bound of the baseline rate (upper for `above`, lower for `below`); the
    /// test then runs at `threshold = factor × bound` with the other half. The baseline's bound is wrong with
    /// probability at most `α/2`, and when it is right the null of the sequential part holds, so the total
    /// false-alarm probability is at most `α`. Without baseline trials the bound is trivial (1 for `above`), so
    /// with `factor ≥ 1` the test holds.
    public init(baseline: Counts, factor: Double, direction: Direction, confidence: Double = 0.99) {
        let c = Self.clampConfidence(confidence)
        let halfAlpha = (1 - c) / 2
        let bound = BernoulliMath.chernoffBound(baseline, upper: direction == .above, delta: halfAlpha)
        let f = factor.isNaN ? (direction == .above ? .infinity : 0) : max(0, factor)
        let scaled = bound == 0 ? 0 : f * bound
        self.init(
            p0: scaled, direction: direction, confidence: c, logBarrier: Double.log(1 / halfAlpha),
            baselineBound: bound)
    }

    /// A test of the share slower than a bound derived from the previous release's latency quantile (`factor` ×
    /// the quantile's confidence bound `baselineBound`, taken at `α/2` by the caller): the share is tested against
    /// `threshold` (1 − q) with the other half of `α`, as in the rate form above.
    public init(threshold: Double, direction: Direction, confidence: Double = 0.99, baselineBound: Double) {
        let c = Self.clampConfidence(confidence)
        self.init(
            p0: threshold, direction: direction, confidence: c, logBarrier: Double.log(1 / ((1 - c) / 2)),
            baselineBound: baselineBound)
    }

    /// Half of `1 − confidence`: what a baseline-relative test spends on the baseline's bound.
    public static func baselineShare(confidence: Double) -> Double { (1 - clampConfidence(confidence)) / 2 }

    private init(p0 raw: Double, direction: Direction, confidence: Double, logBarrier: Double, baselineBound: Double?) {
        let p0 = Self.clampThreshold(raw, direction: direction)
        self.direction = direction
        self.threshold = p0
        self.confidence = confidence
        self.logBarrier = logBarrier
        self.baselineBound = baselineBound
        self.alternatives = Self.alternatives(p0: p0, direction: direction)
    }

    /// Adds one tick's new counts. `elapsedMs` is the time since the test began (the deploy, or the rollback
    /// for a recovery test); it only decides which ticks are restart candidates, so it need not be exact, but it
    /// must come from the clock, not from the counts. A tick with no trials still advances the restarts.
    public mutating func observe(_ counts: Counts, elapsedMs: Int64) {
        let c = counts.clamped
        total += c
        let slot = max(1, elapsedMs / Self.restartSlotMs + 1)
        // The prior mass of the slots begun since the last credited one: F(k) − F(s) with F(K) = K/(K+1)
        // (w_k = 1/(k(k+1)) summed), written so that it never cancels.
        var logWeight: Double? = nil
        if slot > creditedSlots {
            logWeight =
                Double.log(Double(slot - creditedSlots)) - Double.log(Double(slot) + 1)
                - Double.log(Double(creditedSlots) + 1)
            creditedSlots = slot
        }
        if let lw = logWeight {
            if tracks.isEmpty {
                tracks = Array(
                    repeating: Track(logSum: lw, recent: .zero, recentSinceMs: elapsedMs), count: alternatives.count)
            } else {
                for i in tracks.indices {
                    // The new start outweighs every earlier one together: the messages count from it.
                    if lw >= tracks[i].logSum {
                        tracks[i].recent = .zero
                        tracks[i].recentSinceMs = elapsedMs
                    }
                    tracks[i].logSum = BernoulliMath.logAddExp(tracks[i].logSum, lw)
                }
            }
        }
        guard c.trials > 0, !tracks.isEmpty else { return }
        let x = Double(c.events)
        let y = Double(c.trials - c.events)
        for i in tracks.indices {
            let a = alternatives[i]
            tracks[i].logSum += x * a.logRatioEvent + y * a.logRatioNonEvent
            tracks[i].recent += c
        }
    }

    /// `log M`: the log of the evidence against the null. −∞ before the first observation.
    public var logEvidence: Double {
        guard !tracks.isEmpty else { return -.infinity }
        var m = -Double.infinity
        for t in tracks { m = BernoulliMath.logAddExp(m, t.logSum) }
        return m - Double.log(Double(tracks.count))
    }

    /// Whether the evidence has reached the confidence asked for.
    public var reached: Bool {
        // max S / G ≤ M ≤ max S decides most ticks without the log-sum-exp.
        guard !tracks.isEmpty else { return false }
        var top = -Double.infinity
        for t in tracks where t.logSum > top { top = t.logSum }
        if top < logBarrier { return false }
        if top - Double.log(Double(tracks.count)) >= logBarrier { return true }
        return logEvidence >= logBarrier
    }

    /// The confidence level currently reached, clipped to `[0, 1]`: `1 − 1/M`, or for a baseline-relative test
    /// `1 − α/2 − 1/M` (the baseline's bound keeps its half). Equal to ``confidence`` when the test is reached.
    public var strength: Double {
        let lm = logEvidence
        let baselineShare = baselineBound == nil ? 0 : (1 - confidence) / 2
        return min(1, max(0, -Double.expMinusOne(-lm) - baselineShare))
    }

    /// The counts since the start that carries the most weight in the strongest alternative: since the test
    /// began for a release bad from the start, since the change for one that turned bad later. Zero before the
    /// first observation.
    public var recent: Counts { leadingTrack?.recent ?? .zero }

    /// The `elapsedMs` of the first tick counted in ``recent`` (its counts cover the interval that ended then).
    public var recentSinceMs: Int64 { leadingTrack?.recentSinceMs ?? 0 }

    private var leadingTrack: Track? {
        tracks.max { $0.logSum < $1.logSum }
    }

    private static func clampConfidence(_ c: Double) -> Double {
        c.isNaN ? 0.99 : min(max(c, 0.5), 1 - 1e-12)
    }

    private static func clampThreshold(_ p: Double, direction: Direction) -> Double {
        let raw = p.isNaN ? (direction == .above ? 1.0 : 0.0) : p
        return min(max(raw, thresholdMargin), 1 - thresholdMargin)
    }

    static func alternatives(p0: Double, direction: Direction) -> [Alternative] {
        let l0 = BernoulliMath.logit(p0)
        let logP0 = Double.log(p0)
        let logQ0 = Double.log(onePlus: -p0)
        let sign = direction == .above ? 1.0 : -1.0
        return logOddsSteps.map { step in
            let (logP1, logQ1) = BernoulliMath.logProbabilities(logOdds: l0 + sign * step)
            return Alternative(logRatioEvent: logP1 - logP0, logRatioNonEvent: logQ1 - logQ0)
        }
    }
}

extension EvidenceTest {
    /// One alternative rate `p1`, as the log likelihood ratios of one event (`log(p1/p0)`) and one non-event
    /// (`log((1−p1)/(1−p0))`).
    struct Alternative: Sendable, Equatable {
        var logRatioEvent: Double
        var logRatioNonEvent: Double
    }

    /// The Shiryaev–Roberts sum of one alternative, `log S`, and the counts since its dominant start.
    struct Track: Sendable, Equatable, Codable {
        var logSum: Double
        var recent: Counts
        var recentSinceMs: Int64
    }
}

extension EvidenceTest: Codable {
    private enum CodingKeys: String, CodingKey {
        case direction, threshold, confidence, baselineBound, total, creditedSlots, tracks
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let direction = try c.decode(Direction.self, forKey: .direction)
        let threshold = try c.decode(Double.self, forKey: .threshold)
        let confidence = Self.clampConfidence(try c.decode(Double.self, forKey: .confidence))
        let bound = try c.decodeIfPresent(Double.self, forKey: .baselineBound)
        let alpha = bound == nil ? 1 - confidence : (1 - confidence) / 2
        self.init(
            p0: threshold, direction: direction, confidence: confidence, logBarrier: Double.log(1 / alpha),
            baselineBound: bound)
        total = try c.decode(Counts.self, forKey: .total)
        creditedSlots = try c.decode(Int64.self, forKey: .creditedSlots)
        tracks = try c.decode([Track].self, forKey: .tracks)
        // Tracks exist exactly once a restart has been credited, one per alternative.
        let expected = creditedSlots > 0 ? alternatives.count : 0
        guard tracks.count == expected else {
            throw DecodingError.dataCorruptedError(
                forKey: .tracks, in: c,
                debugDescription: "\(tracks.count) tracks for \(expected) (\(creditedSlots) restart slots credited)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(direction, forKey: .direction)
        try c.encode(threshold, forKey: .threshold)
        try c.encode(confidence, forKey: .confidence)
        try c.encodeIfPresent(baselineBound, forKey: .baselineBound)
        try c.encode(total, forKey: .total)
        try c.encode(creditedSlots, forKey: .creditedSlots)
        try c.encode(tracks, forKey: .tracks)
    }
}
