/// Counter arithmetic over a window of recent scrapes, per target, with Prometheus' semantics for resets.

/// Identity of one selected series of a target.
public struct SeriesKey: Hashable, Sendable {
    /// The canonical label set (sorted by name, without `le`).
    public var id: String
    /// The bucket's upper bound, for histogram buckets.
    public var le: Double?
    /// True when the series matches the error matchers (`errorRatio`).
    public var isError: Bool

    public init(id: String, le: Double? = nil, isError: Bool = false) {
        self.id = id
        self.le = le
        self.isError = isError
    }
}

/// The selected series of one successful scrape of one target.
public struct CounterSnapshot: Sendable, Equatable {
    public var at: Timestamp
    public var values: [SeriesKey: Double]
    public init(at: Timestamp, values: [SeriesKey: Double]) {
        self.at = at
        self.values = values
    }
}

/// How much each series of one target grew over the window.
public struct TargetIncrease: Sendable, Equatable {
    public var perSeries: [SeriesKey: Double]
    /// Time between the first and last snapshot used.
    public var seconds: Double
    /// Counter resets seen (a value lower than the one before: the process restarted).
    public var resets: Int
    public var total: Double { perSeries.values.reduce(0, +) }
}

/// Recent snapshots of every target, enough to cover `window`: all snapshots inside it plus the newest one at or
/// before its start (the baseline).
///
/// Increase of a series between consecutive snapshots `a → b`:
/// - `b - a` when `b ≥ a`;
/// - `b` when `b < a` (a counter reset: the process restarted and counted `b` since);
/// - `b` when the series was not seen before in the retained snapshots of a target that was (client libraries
///   create a labelled series, such as the first `code="500"`, on its first increment, from zero);
/// - nothing for a series that vanished.
/// A target needs two snapshots before it contributes (a new or returning instance contributes from its second
/// scrape on). Snapshots of a target that failed this tick stay and still count within the window.
public struct CounterWindow: Sendable, Equatable {
    public let window: Interval
    public private(set) var snapshots: [String: [CounterSnapshot]] = [:]
    /// The `now` of the last full `prune`: every target is recorded at the same time in a tick, and pruning every
    /// target again for each of them made a tick O(targets²) (a third of a core at 1,000 targets).
    private var prunedAt: Timestamp?

    public init(window: Interval) {
        self.window = window
    }

    public static func == (a: CounterWindow, b: CounterWindow) -> Bool {
        a.window == b.window && a.snapshots == b.snapshots
    }

    public mutating func record(target: String, _ snapshot: CounterSnapshot) {
        // Taken out of the dictionary, so appending does not copy the list.
        var list = snapshots.removeValue(forKey: target) ?? []
        // Keep time order even if a clock step makes a snapshot older than the last one: drop the stale ones.
        list.removeAll { $0.at >= snapshot.at }
        list.append(snapshot)
        snapshots[target] = Self.pruned(list, start: snapshot.at - window)
        // The other targets only change when the time does (prune is idempotent for one `now`).
        if prunedAt != snapshot.at { prune(now: snapshot.at) }
    }

    private static func pruned(_ list: [CounterSnapshot], start: Timestamp) -> [CounterSnapshot] {
        guard let baseline = list.lastIndex(where: { $0.at <= start }), baseline > 0 else { return list }
        return Array(list[baseline...])
    }

    /// Drops snapshots no longer needed at `now`.
    public mutating func prune(now: Timestamp) {
        let start = now - window
        for (target, list) in snapshots {
            guard let baseline = list.lastIndex(where: { $0.at <= start }), baseline > 0 else { continue }
            snapshots[target] = Array(list[baseline...])
        }
        // A target not seen for two windows is gone (removed from the fleet).
        let oldest = now - window - window
        if snapshots.values.contains(where: { ($0.last?.at).map { $0 <= oldest } ?? true }) {
            snapshots = snapshots.filter { ($0.value.last?.at).map { $0 > oldest } ?? false }
        }
        prunedAt = now
    }

    public mutating func forget(target: String) {
        snapshots[target] = nil
    }

    /// The increase of every series of `target` over the window ending at `now`; nil when the target has fewer than
    /// two snapshots in it.
    public func increase(target: String, now: Timestamp) -> TargetIncrease? {
        guard let list = snapshots[target] else { return nil }
        let start = now - window
        let from = list.lastIndex(where: { $0.at <= start }) ?? 0
        return Self.increase(over: list[from...].filter { $0.at <= now })
    }

    /// The increase of every series of `target` between its snapshot taken at `now` and the one before: what this
    /// tick added (the counts a sequential test consumes). Nil when the target was not scraped at `now` or has no
    /// earlier snapshot.
    public func lastStep(target: String, now: Timestamp) -> TargetIncrease? {
        guard let list = snapshots[target], list.count >= 2, list[list.count - 1].at == now else { return nil }
        return Self.increase(over: Array(list[(list.count - 2)...]))
    }

    private static func increase(over used: [CounterSnapshot]) -> TargetIncrease? {
        guard used.count >= 2, let first = used.first, let last = used.last else { return nil }
        // Per series: the last value seen, the increase so far (nil until a finite one), and whether it is in the
        // first snapshot. One table, so each series of each snapshot costs one hash lookup (this runs for every
        // target on every tick).
        var acc: [SeriesKey: SeriesAccumulator] = [:]
        acc.reserveCapacity(first.values.count)
        for (key, v) in first.values { acc[key] = SeriesAccumulator(last: v, increase: nil, inFirst: true) }
        var resets = 0
        for snap in used.dropFirst() {
            for (key, v) in snap.values {
                acc[key, default: SeriesAccumulator(last: nil, increase: nil, inFirst: false)].add(v, resets: &resets)
            }
            // Series absent from this snapshot get no increase; their last value stays for a comeback.
        }
        var inc: [SeriesKey: Double] = [:]
        inc.reserveCapacity(acc.count)
        for (key, a) in acc {
            // Series present only in the first snapshot contribute 0 rather than being absent.
            if let d = a.increase { inc[key] = d } else if a.inFirst { inc[key] = 0 }
        }
        return TargetIncrease(perSeries: inc, seconds: (last.at - first.at).seconds, resets: resets)
    }

    public var targets: [String] { Array(snapshots.keys) }
}

/// One series while `CounterWindow.increase` walks the snapshots.
private struct SeriesAccumulator {
    var last: Double?
    var increase: Double?
    let inFirst: Bool

    init(last: Double?, increase: Double?, inFirst: Bool) {
        self.last = last
        self.increase = increase
        self.inFirst = inFirst
    }

    /// A value lower than the last one is a reset (the new value counts); a series not seen before counts from 0.
    mutating func add(_ v: Double, resets: inout Int) {
        let d: Double
        if let prev = last {
            if v >= prev {
                d = v - prev
            } else {
                d = v
                resets += 1
            }
        } else {
            d = v
        }
        if d.isFinite { increase = (increase ?? 0) + d }
        last = v
    }
}

/// Reductions over the increases of every target.
public enum CounterMath {
    /// Errors and all counted events, summed over targets.
    public static func errorRatio(_ increases: [TargetIncrease]) -> (errors: Double, total: Double) {
        var errors = 0.0, total = 0.0
        for t in increases {
            for (k, v) in t.perSeries {
                total += v
                if k.isError { errors += v }
            }
        }
        return (errors, total)
    }

    /// Per-second rate summed over targets (each target over its own covered time).
    public static func rate(_ increases: [TargetIncrease]) -> Double {
        increases.reduce(0) { $0 + ($1.seconds > 0 ? $1.total / $1.seconds : 0) }
    }

    /// Bucket increases summed by upper bound over every series and target (`sum by (le) (increase(…))`).
    public static func buckets(_ increases: [TargetIncrease]) -> [HistogramBucket] {
        var byBound: [Double: Double] = [:]
        for t in increases {
            for (k, v) in t.perSeries {
                if let le = k.le { byBound[le, default: 0] += v }
            }
        }
        return byBound.map { HistogramBucket(upperBound: $0.key, count: $0.value) }.sorted {
            $0.upperBound < $1.upperBound
        }
    }
}

/// Prometheus `=~` label matchers (fully anchored), with a memo of results per label value.
/// Not `Sendable`: owned by one source.
public final class LabelMatchers {
    private let matchers: [(name: String, regex: Regex<AnyRegexOutput>?, pattern: String)]
    private var memo: [[String: Bool]]

    /// Patterns were validated with the configuration; one that fails to compile here matches nothing.
    public init(_ patterns: [String: String]) {
        matchers = patterns.sorted { $0.key < $1.key }.map {
            (name: $0.key, regex: try? Regex($0.value), pattern: $0.value)
        }
        memo = Array(repeating: [:], count: matchers.count)
    }

    public var isEmpty: Bool { matchers.isEmpty }

    /// True when every matcher matches (a missing label is the empty string, as in PromQL).
    public func matches(_ labels: [PromLabel]) -> Bool {
        for (k, m) in matchers.enumerated() {
            let value = labels.first { $0.name == m.name }?.value ?? ""
            if let known = memo[k][value] {
                if !known { return false }
                continue
            }
            let ok = m.regex.map { (try? $0.wholeMatch(in: value)) != nil } ?? false
            if memo[k].count > 10_000 { memo[k].removeAll() }
            memo[k][value] = ok
            if !ok { return false }
        }
        return true
    }

    /// `{code=~"5.."}` for messages.
    public var description: String {
        "{" + matchers.map { "\($0.name)=~\(JSONValue.quote($0.pattern))" }.joined(separator: ",") + "}"
    }
}

extension PromSample {
    /// The canonical label set, sorted by name, without `le`: `a="1",b="2"`.
    public var seriesID: String {
        labels.filter { $0.name != "le" }.sorted { $0.name < $1.name }
            .map { "\($0.name)=\(JSONValue.quote($0.value))" }.joined(separator: ",")
    }
}
