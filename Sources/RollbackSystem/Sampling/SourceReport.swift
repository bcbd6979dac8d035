#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// What a source saw in one tick: a sample per metric, and notes an operator may want even when there is a value
/// (`1 of 3 targets failed: connection refused to …`).
public struct SourceReport: Sendable, Equatable {
    public var samples: [String: SampleValue]
    /// What this tick added behind counted samples (errors of requests, unhealthy of probed instances).
    public var counts: [String: Counts]
    /// What this tick added behind scraped quantiles: cumulative bucket counts.
    public var histograms: [String: [HistogramBucket]]
    public var notes: [String: [String]]
    /// How long the source took, per metric it answered for (set by the `Sampler`).
    public var seconds: [String: Double] = [:]

    public init(
        samples: [String: SampleValue] = [:], counts: [String: Counts] = [:],
        histograms: [String: [HistogramBucket]] = [:], notes: [String: [String]] = [:]
    ) {
        self.samples = samples
        self.counts = counts
        self.histograms = histograms
        self.notes = notes
    }

    mutating func merge(_ other: SourceReport) {
        for (k, v) in other.samples { samples[k] = v }
        for (k, v) in other.counts { counts[k] = v }
        for (k, v) in other.histograms { histograms[k] = v }
        for (k, v) in other.notes { notes[k, default: []].append(contentsOf: v) }
        for (k, v) in other.seconds { seconds[k] = v }
    }
}

/// A metric source that can also explain itself.
public protocol ReportingSource: MetricSource {
    func report(now: Timestamp) async -> SourceReport
}

extension ReportingSource {
    public func sample(now: Timestamp) async -> [String: SampleValue] {
        await report(now: now).samples
    }
}

enum Reasons {
    /// `connection refused to http://a/metrics` or `3 of 3 targets failed: connection refused to http://a/metrics;
    /// timeout after 2s for http://b/metrics (and 1 more)`.
    static func summary(_ failures: [String], of total: Int, limit: Int = 2, what: String = "targets failed") -> String
    {
        if failures.count == 1 && total == 1 { return failures[0] }
        let shown = failures.prefix(limit).joined(separator: "; ")
        let more = failures.count > limit ? " (and \(failures.count - limit) more)" : ""
        return "\(failures.count) of \(total) \(what): \(shown)\(more)"
    }

    /// A short quoted excerpt of a body for messages (printable ASCII, at most `max` characters).
    static func excerpt(_ bytes: [UInt8], max: Int = 60) -> String {
        var s = ""
        for b in bytes.prefix(max) {
            s += (b >= 0x20 && b < 0x7F) ? String(UnicodeScalar(b)) : (b == 0x0A ? "\\n" : "\\x" + String(b, radix: 16))
        }
        return "\"" + s + (bytes.count > max ? "…" : "") + "\""
    }
}

extension JSONValue {
    /// The value at a dot path such as `status` or `checks.db` (array elements by index: `items.0`).
    func lookup(dotPath: String) -> JSONValue? {
        var current: JSONValue? = self
        for part in dotPath.split(separator: ".", omittingEmptySubsequences: false) {
            guard let c = current else { return nil }
            if case let .array(items) = c, let i = Int(part) {
                current = items.indices.contains(i) ? items[i] : nil
            } else {
                current = c[String(part)]
            }
        }
        return current
    }

    /// Strings as themselves, numbers and booleans as JSON writes them.
    var plainText: String? {
        switch self {
        case let .string(s): return s
        case let .number(n): return JSONValue.format(number: n)
        case let .bool(b): return b ? "true" : "false"
        default: return nil
        }
    }
}
