/// Human formatting of metric values (no Foundation).
public enum ValueFormat {
    public static func format(_ v: Double, unit: MetricUnit) -> String {
        switch unit {
        case .ratio: return percent(v)
        case .seconds: return v < 1 ? "\(trim(v * 1000))ms" : "\(trim(v))s"
        case .perSecond: return "\(trim(v))/s"
        case .count, .number: return trim(v)
        }
    }

    public static func percent(_ v: Double) -> String { "\(trim(v * 100))%" }

    /// At most 3 decimals, trailing zeros removed.
    public static func trim(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "+Inf" : "-Inf") }
        let scaled = (v * 1000).rounded() / 1000
        if scaled == scaled.rounded(), abs(scaled) < 1e15 { return String(Int64(scaled)) }
        var s = "\(scaled)"
        if s.contains("e") { return s }
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }
}
