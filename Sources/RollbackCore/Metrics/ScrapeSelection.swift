/// Picks the series a `scrape` metric needs out of one target's exposition.
/// Not `Sendable` (it holds compiled regular expressions): owned by one source.
public final class ScrapeSelector {
    public enum Selection: Sendable, Equatable {
        /// Counter or bucket series (for `errorRatio`, `rate`, `quantile`).
        case series([SeriesKey: Double])
        /// The summed gauge (for `gauge`).
        case gauge(Double)
        /// Nothing usable, with the reason.
        case missing(String)
    }

    public let config: ScrapeConfig
    /// The sample name read: the counter, `<histogram>_bucket` or the gauge.
    public let sampleName: String
    /// Every sample name the parser must keep (the one read plus names used for hints).
    public let keptNames: Set<String>
    private let labels: LabelMatchers
    private let errors: LabelMatchers

    public init(_ config: ScrapeConfig) {
        self.config = config
        switch config.measure {
        case .errorRatio, .rate: sampleName = config.counter ?? ""
        case .quantile: sampleName = (config.histogram ?? "") + "_bucket"
        case .gauge: sampleName = config.gauge ?? ""
        }
        var kept: Set<String> = [sampleName]
        if config.measure == .errorRatio || config.measure == .rate, !sampleName.hasSuffix("_total") {
            kept.insert(sampleName + "_total")
        }
        keptNames = kept
        labels = LabelMatchers(config.labels)
        errors = LabelMatchers(config.errorLabels)
    }

    public func select(_ exposition: Exposition) -> Selection {
        var found = false
        var values: [SeriesKey: Double] = [:]
        var gauge = 0.0
        var badLe: String?
        for s in exposition.samples where s.name == sampleName {
            found = true
            guard labels.isEmpty || labels.matches(s.labels) else { continue }
            switch config.measure {
            case .gauge:
                gauge += s.value
                values[SeriesKey(id: s.seriesID)] = s.value
            case .quantile:
                guard let leText = s.label("le") else { continue }
                guard let le = ExpositionParser.parseValue(leText), !le.isNaN else {
                    badLe = leText
                    continue
                }
                values[SeriesKey(id: s.seriesID, le: le)] = s.value
            case .errorRatio:
                values[SeriesKey(id: s.seriesID, isError: errors.matches(s.labels))] = s.value
            case .rate:
                values[SeriesKey(id: s.seriesID)] = s.value
            }
        }
        if !found {
            if exposition.samples.contains(where: { $0.name == sampleName + "_total" }) {
                return .missing(
                    "no \(sampleName) samples (the exposition has \(sampleName)_total: set \"counter\": \"\(sampleName)_total\")"
                )
            }
            return .missing("no \(sampleName) samples in the exposition")
        }
        if values.isEmpty {
            if let badLe { return .missing("\(sampleName) has an invalid le=\(JSONValue.quote(badLe))") }
            return .missing("no \(sampleName) samples match \(labels.description)")
        }
        if config.measure == .gauge { return .gauge(gauge) }
        return .series(values)
    }
}
