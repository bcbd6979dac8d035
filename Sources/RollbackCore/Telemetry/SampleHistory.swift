/// The recent samples of every metric, bounded, for the charts of incident reports: one point per tick (nil on
/// no-data), at most `limit` per metric (the oldest go first).
public struct SampleHistory: Sendable, Equatable, Codable {
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
            var list = points[name, default: []]
            if case let .value(v) = sample, v.isFinite {
                list.append(Point(at: now, value: v))
            } else {
                list.append(Point(at: now, value: nil))
            }
            if list.count > limit { list.removeFirst(list.count - limit) }
            points[name] = list
        }
    }

    /// The points of `metric` from `from` to `to`, inclusive.
    public func points(of metric: String, from: Timestamp, to: Timestamp) -> [Point] {
        (points[metric] ?? []).filter { $0.at >= from && $0.at <= to }
    }
}
