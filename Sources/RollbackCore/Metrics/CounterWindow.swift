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
    /// Each series that grew (or was present from the start of the span) with its increase, in no set order: a
    /// list, not a dictionary, since every tick builds one per target and metric and only ever walks it.
    public var series: [(key: SeriesKey, increase: Double)]
    /// Time between the first and last snapshot used.
    public var seconds: Double
    /// Counter resets seen (a value lower than the one before: the process restarted).
    public var resets: Int

    public init(series: [(key: SeriesKey, increase: Double)], seconds: Double, resets: Int) {
        self.series = series
        self.seconds = seconds
        self.resets = resets
    }

    public init(perSeries: [SeriesKey: Double], seconds: Double, resets: Int) {
        self.init(series: perSeries.map { ($0.key, $0.value) }, seconds: seconds, resets: resets)
    }

    public var perSeries: [SeriesKey: Double] {
        Dictionary(series.map { ($0.key, $0.increase) }, uniquingKeysWith: +)
    }
    public var total: Double { series.reduce(0) { $0 + $1.increase } }

    public static func == (a: TargetIncrease, b: TargetIncrease) -> Bool {
        a.perSeries == b.perSeries && a.seconds == b.seconds && a.resets == b.resets
    }
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
///
/// Each snapshot also keeps, per series, the running sum of those step increases (and of resets), so the increase
/// over any span is one subtraction per series, not a walk over every snapshot of the window: at a 250 ms interval
/// a 30 s window holds 120 snapshots per target, and the walk was most of the daemon's CPU (Benchmarks/overhead).
public struct CounterWindow: Sendable, Equatable {
    public let window: Interval
    private var histories: [String: CounterHistory] = [:]
    /// The `now` of the last full `prune`: every target is recorded at the same time in a tick, and pruning every
    /// target again for each of them made a tick O(targets²) (a third of a core at 1,000 targets).
    private var prunedAt: Timestamp?

    public init(window: Interval) {
        self.window = window
    }

    /// The retained snapshots per target, as recorded (for tests and diagnostics; rebuilt on each call).
    public var snapshots: [String: [CounterSnapshot]] { histories.mapValues { $0.snapshots } }

    public static func == (a: CounterWindow, b: CounterWindow) -> Bool {
        a.window == b.window && a.snapshots == b.snapshots
    }

    public mutating func record(target: String, _ snapshot: CounterSnapshot) {
        // Taken out of the dictionary, so appending does not copy the history.
        var history = histories.removeValue(forKey: target) ?? CounterHistory()
        history.append(snapshot)
        history.drop(before: snapshot.at - window)
        histories[target] = history
        // The other targets only change when the time does (prune is idempotent for one `now`).
        if prunedAt != snapshot.at { prune(now: snapshot.at) }
    }

    /// Drops snapshots no longer needed at `now`.
    public mutating func prune(now: Timestamp) {
        let start = now - window
        for target in Array(histories.keys) {
            histories[target]?.drop(before: start)
        }
        // A target not seen for two windows is gone (removed from the fleet).
        let oldest = now - window - window
        if histories.values.contains(where: { ($0.times.last).map { $0 <= oldest } ?? true }) {
            histories = histories.filter { ($0.value.times.last).map { $0 > oldest } ?? false }
        }
        prunedAt = now
    }

    public mutating func forget(target: String) {
        histories[target] = nil
    }

    /// The increase of every series of `target` over the window ending at `now`; nil when the target has fewer than
    /// two snapshots in it.
    public func increase(target: String, now: Timestamp) -> TargetIncrease? {
        guard let h = histories[target] else { return nil }
        let from = h.times.lastIndex(where: { $0 <= now - window }) ?? 0
        guard let to = h.times.lastIndex(where: { $0 <= now }) else { return nil }
        return h.increase(from: from, to: to)
    }

    /// The increase of every series of `target` between its snapshot taken at `now` and the one before: what this
    /// tick added (the counts a sequential test consumes). Nil when the target was not scraped at `now` or has no
    /// earlier snapshot.
    public func lastStep(target: String, now: Timestamp) -> TargetIncrease? {
        guard let h = histories[target], h.times.count >= 2, h.times[h.times.count - 1] == now else { return nil }
        return h.increase(from: h.times.count - 2, to: h.times.count - 1)
    }

    public var targets: [String] { Array(histories.keys) }
}

/// One series in one snapshot: its value, and the running sums of its step increases (finite ones), of the steps
/// that had a finite increase, and of its resets, since the series was first seen in the retained history.
private struct SeriesPoint: Sendable {
    var value: Double
    var sum: Double
    var steps: Int32
    var resets: Int32
    var present: Bool

    static let absent = SeriesPoint(value: 0, sum: 0, steps: 0, resets: 0, present: false)
}

/// The retained snapshots of one target, one row per snapshot, one column per series ever seen (dense: a row is an
/// array indexed by the series' column; a row shorter than the column count lacks the later series).
private struct CounterHistory: Sendable {
    var keys: [SeriesKey] = []
    var columns: [SeriesKey: Int] = [:]
    var times: [Timestamp] = []
    var rows: [[SeriesPoint]] = []
    /// Per column: the absolute index of the newest row the series is present in (-1: never).
    var newest: [Int] = []
    /// The absolute index of `rows[0]` (rows dropped from the front so far).
    var dropped = 0

    func point(_ row: Int, _ column: Int) -> SeriesPoint? {
        let r = rows[row]
        guard column < r.count, r[column].present else { return nil }
        return r[column]
    }

    mutating func append(_ snapshot: CounterSnapshot) {
        // Keep time order even if a clock step makes a snapshot older than the last one: drop the stale ones.
        if let stale = times.firstIndex(where: { $0 >= snapshot.at }) {
            times.removeSubrange(stale...)
            rows.removeSubrange(stale...)
            for c in keys.indices {
                newest[c] = (rows.indices.last { point($0, c) != nil }).map { $0 + dropped } ?? -1
            }
        }
        var pairs: [(column: Int, value: Double)] = []
        pairs.reserveCapacity(snapshot.values.count)
        for (key, v) in snapshot.values {
            let c: Int
            if let known = columns[key] {
                c = known
            } else {
                c = keys.count
                keys.append(key)
                columns[key] = c
                newest.append(-1)
            }
            pairs.append((c, v))
        }
        var row = [SeriesPoint](repeating: .absent, count: keys.count)
        let index = dropped + rows.count
        for (c, v) in pairs {
            var p = SeriesPoint(value: v, sum: 0, steps: 0, resets: 0, present: true)
            if newest[c] >= dropped, let prev = point(newest[c] - dropped, c) {
                let d: Double
                var reset: Int32 = 0
                if v >= prev.value {
                    d = v - prev.value
                } else {
                    d = v
                    reset = 1
                }
                p.sum = prev.sum + (d.isFinite ? d : 0)
                p.steps = prev.steps + (d.isFinite ? 1 : 0)
                p.resets = prev.resets + reset
            }
            row[c] = p
            newest[c] = index
        }
        times.append(snapshot.at)
        rows.append(row)
    }

    /// Keeps the newest snapshot at or before `start` (the baseline) and everything after it.
    mutating func drop(before start: Timestamp) {
        guard let baseline = times.lastIndex(where: { $0 <= start }), baseline > 0 else { return }
        times.removeFirst(baseline)
        rows.removeFirst(baseline)
        dropped += baseline
        // Series that churn (a label value per deploy) would grow the columns forever: compact when most are gone.
        let live = newest.indices.filter { newest[$0] >= dropped }
        if keys.count > 32 && live.count * 2 < keys.count { compact(keeping: live) }
    }

    private mutating func compact(keeping live: [Int]) {
        keys = live.map { keys[$0] }
        columns = Dictionary(uniqueKeysWithValues: keys.enumerated().map { ($1, $0) })
        newest = live.map { newest[$0] }
        rows = rows.map { r in live.map { $0 < r.count ? r[$0] : .absent } }
    }

    /// The increase of every series over the snapshots `from...to` (indices into `rows`): per series, the running
    /// sum at its last appearance in the span minus the one at its first; a series first seen after `from` counts
    /// its first value too (it was created from zero), one present only in `from` counts 0.
    func increase(from: Int, to: Int) -> TargetIncrease? {
        guard to - from >= 1 else { return nil }
        var series: [(key: SeriesKey, increase: Double)] = []
        series.reserveCapacity(keys.count)
        var resets = 0
        let newestRow = rows.count - 1
        for c in keys.indices {
            var last = -1
            if to == newestRow {
                last = newest[c] - dropped
                if last < from { continue }
            } else {
                guard let l = (from...to).last(where: { point($0, c) != nil }) else { continue }
                last = l
            }
            var first = from
            while point(first, c) == nil { first += 1 }
            guard let a = point(first, c), let b = point(last, c) else { continue }
            var increase = b.sum - a.sum
            var counted = b.steps > a.steps
            resets += Int(b.resets - a.resets)
            if first != from && a.value.isFinite {
                increase = a.value + increase
                counted = true
            }
            if counted {
                series.append((keys[c], increase))
            } else if first == from {
                series.append((keys[c], 0))
            }
        }
        return TargetIncrease(series: series, seconds: (times[to] - times[from]).seconds, resets: resets)
    }

    var snapshots: [CounterSnapshot] {
        rows.indices.map { i in
            var values: [SeriesKey: Double] = [:]
            for c in keys.indices { if let p = point(i, c) { values[keys[c]] = p.value } }
            return CounterSnapshot(at: times[i], values: values)
        }
    }
}

/// Reductions over the increases of every target.
public enum CounterMath {
    /// Errors and all counted events, summed over targets.
    public static func errorRatio(_ increases: [TargetIncrease]) -> (errors: Double, total: Double) {
        var errors = 0.0, total = 0.0
        for t in increases {
            for (k, v) in t.series {
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
            for (k, v) in t.series {
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
