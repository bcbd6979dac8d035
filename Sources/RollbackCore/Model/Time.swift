/// A length of time in milliseconds, written in config as `"500ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"` or a
/// combination such as `"1m30s"`.
public struct Interval: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var milliseconds: Int64

    public init(milliseconds: Int64) { self.milliseconds = milliseconds }
    public static func ms(_ v: Int64) -> Interval { Interval(milliseconds: v) }
    public static func seconds(_ v: Int64) -> Interval { Interval(milliseconds: v * 1000) }
    public static func minutes(_ v: Int64) -> Interval { Interval(milliseconds: v * 60_000) }
    public static func hours(_ v: Int64) -> Interval { Interval(milliseconds: v * 3_600_000) }
    public static let zero = Interval(milliseconds: 0)

    public static func < (a: Interval, b: Interval) -> Bool { a.milliseconds < b.milliseconds }
    public static func + (a: Interval, b: Interval) -> Interval {
        Interval(milliseconds: a.milliseconds + b.milliseconds)
    }
    public static func * (a: Interval, n: Int) -> Interval { Interval(milliseconds: a.milliseconds * Int64(n)) }
    public var seconds: Double { Double(milliseconds) / 1000 }

    private static let units: [(suffix: String, ms: Int64)] = [
        ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1),
    ]

    /// Parses `"5s"`, `"2m"`, `"1h30m"`, `"250ms"`, `"1d"`. Returns nil for anything else (including negatives,
    /// bare numbers and unknown units).
    public init?(parsing text: String) {
        var total: Int64 = 0
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        var lastUnitRank = -1
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isASCII && $0.isNumber }
            guard !digits.isEmpty, digits.count <= 9, let n = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unitText = rest.prefix { $0.isASCII && $0.isLetter }
            guard let rank = Interval.units.firstIndex(where: { $0.suffix == unitText }), rank > lastUnitRank else {
                return nil
            }
            lastUnitRank = rank
            rest = rest.dropFirst(unitText.count)
            total += n * Interval.units[rank].ms
        }
        self.milliseconds = total
    }

    /// The canonical short form: `"90s"` prints as `"1m30s"`.
    public var description: String {
        if milliseconds == 0 { return "0s" }
        var rest = milliseconds
        var out = ""
        for unit in Interval.units where rest >= unit.ms {
            out += "\(rest / unit.ms)\(unit.suffix)"
            rest %= unit.ms
        }
        return out
    }
}

/// A point in time: milliseconds since the Unix epoch (UTC). Core never reads a clock; the caller passes these in.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public var millisecondsSinceEpoch: Int64
    public init(millisecondsSinceEpoch: Int64) { self.millisecondsSinceEpoch = millisecondsSinceEpoch }
    public init(secondsSinceEpoch: Double) { self.millisecondsSinceEpoch = Int64((secondsSinceEpoch * 1000).rounded()) }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.millisecondsSinceEpoch < b.millisecondsSinceEpoch }
    public static func + (a: Timestamp, d: Interval) -> Timestamp {
        Timestamp(millisecondsSinceEpoch: a.millisecondsSinceEpoch + d.milliseconds)
    }
    public static func - (a: Timestamp, d: Interval) -> Timestamp {
        Timestamp(millisecondsSinceEpoch: a.millisecondsSinceEpoch - d.milliseconds)
    }
    public static func - (a: Timestamp, b: Timestamp) -> Interval {
        Interval(milliseconds: a.millisecondsSinceEpoch - b.millisecondsSinceEpoch)
    }

    /// The UTC civil date and time (proleptic Gregorian), computed without Foundation.
    public var utcComponents: (year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int) {
        let ms = millisecondsSinceEpoch
        var days = ms / 86_400_000
        var msOfDay = ms % 86_400_000
        if msOfDay < 0 { msOfDay += 86_400_000; days -= 1 }
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        return (
            Int(y), Int(m), Int(d), Int(msOfDay / 3_600_000), Int(msOfDay / 60_000 % 60),
            Int(msOfDay / 1000 % 60), Int(msOfDay % 1000)
        )
    }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-22T13:53:00.123Z`.
    public var iso8601: String {
        let c = utcComponents
        return "\(Self.pad(c.year, 4))-\(Self.pad(c.month, 2))-\(Self.pad(c.day, 2))T\(Self.pad(c.hour, 2)):"
            + "\(Self.pad(c.minute, 2)):\(Self.pad(c.second, 2)).\(Self.pad(c.millisecond, 3))Z"
    }

    /// Compact UTC form for names: `20261122T135300Z`.
    public var compactUTC: String {
        let c = utcComponents
        return "\(Self.pad(c.year, 4))\(Self.pad(c.month, 2))\(Self.pad(c.day, 2))T"
            + "\(Self.pad(c.hour, 2))\(Self.pad(c.minute, 2))\(Self.pad(c.second, 2))Z"
    }

    public var description: String { iso8601 }
}
