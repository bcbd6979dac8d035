/// The recent samples of every metric, bounded, for the charts of incident reports: one point per tick (nil on
/// no-data), at most `limit` per metric (the oldest go first). The daemon keeps it in `<state dir>/samples.json`
/// so a chart survives a restart.
public struct SampleHistory: Sendable, Equatable {
    public struct Point: Sendable, Equatable, Codable {
        public var at: Timestamp
        public var value: Double?
    }

    public static let defaultLimit = 4096
    public var limit: Int
    public private(set) var points: [String: [Point]] = [:]

    public init(limit: Int = SampleHistory.defaultLimit) { self.limit = limit }

    public mutating func record(_ samples: [String: SampleValue], at now: Timestamp) {
        for (name, sample) in samples {
            var value: Double?
            if case let .value(v) = sample, v.isFinite { value = v }
            // In place (no copy of the list per tick), trimmed in steps of an eighth so the front is not moved
            // on every tick.
            points[name, default: []].append(Point(at: now, value: value))
            if let n = points[name]?.count, n > limit + limit / 8 { points[name]?.removeFirst(n - limit) }
        }
    }

    /// The points of `metric` from `from` to `to`, inclusive (at most `limit` of the newest).
    public func points(of metric: String, from: Timestamp, to: Timestamp) -> [Point] {
        (points[metric] ?? []).suffix(limit).filter { $0.at >= from && $0.at <= to }
    }
}

/// On disk, per metric two arrays (milliseconds and values, null for no-data): a tenth of the size of a list of
/// objects, for a file written every half minute.
extension SampleHistory: Codable {
    private struct Series: Codable {
        var at: [Int64]
        var v: [Double?]
    }

    private enum CodingKeys: String, CodingKey { case limit, metrics }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        limit = max(1, try c.decode(Int.self, forKey: .limit))
        let metrics = try c.decode([String: Series].self, forKey: .metrics)
        for (name, s) in metrics where s.at.count == s.v.count {
            points[name] = zip(s.at, s.v).suffix(limit).map {
                Point(at: Timestamp(millisecondsSinceEpoch: $0), value: $1.flatMap { $0.isFinite ? $0 : nil })
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(limit, forKey: .limit)
        try c.encode(
            points.mapValues { list in
                let kept = list.suffix(limit)
                return Series(at: kept.map(\.at.millisecondsSinceEpoch), v: kept.map(\.value))
            }, forKey: .metrics)
    }
}
