import RollbackCore

/// The picture of an incident: the tripping trigger's metric over time, from before the deploy to the end of
/// verification, with the threshold and a marker at each key moment. Plain SVG 1.1 (no script, no external
/// font or stylesheet), readable without a legend: every line is labelled where it is drawn. Each marker carries
/// `data-marker` and `data-at` (ISO 8601) so tools and tests can read the times back.
public enum IncidentChart {
    public struct Marker: Sendable, Equatable {
        public var name: String
        public var label: String
        public var at: Timestamp
    }

    /// What a chart needs beyond the incident: when the bad release went live, the metric's history, its unit.
    public struct Inputs: Sendable {
        public var incident: Incident
        public var deployedAt: Timestamp?
        public var history: SampleHistory
        public var unit: MetricUnit
        public var now: Timestamp

        public init(
            incident: Incident, deployedAt: Timestamp?, history: SampleHistory, unit: MetricUnit, now: Timestamp
        ) {
            self.incident = incident
            self.deployedAt = deployedAt
            self.history = history
            self.unit = unit
            self.now = now
        }
    }

    /// Deploy, first breach, trip, rollback started, verification end: those the incident has reached.
    public static func markers(_ i: Incident, deployedAt: Timestamp?) -> [Marker] {
        let k = IncidentReport.keyTimes(i)
        let all: [(String, String, Timestamp?)] = [
            ("deploy", "deploy \(i.fromVersion)", deployedAt),
            ("first_breach", "first breach", k.firstBreach),
            ("trip", "trip", k.tripped),
            ("rollback", "rollback" + (i.toVersion.map { " to \($0)" } ?? ""), k.rollbackStarted),
            ("verification_end", "verification end", k.verified),
        ]
        return all.compactMap { name, label, at in at.map { Marker(name: name, label: label, at: $0) } }
    }

    /// The smallest of 1, 2, 2.5, 5 × 10ⁿ that is at least `x`.
    static func niceStep(_ x: Double) -> Double {
        guard x > 0, x.isFinite else { return 1 }
        var p = 1.0
        while p * 10 <= x { p *= 10 }
        while p > x { p /= 10 }
        return [1, 2, 2.5, 5, 10].map { $0 * p }.first { $0 >= x } ?? 10 * p
    }

    /// Nil when no trigger tripped (nothing to draw).
    public static func svg(_ input: Inputs) -> String? {
        let i = input.incident
        guard let trip = i.trips.first else { return nil }
        let marks = markers(i, deployedAt: input.deployedAt)
        let firstMark = marks.map(\.at).min() ?? i.openedAt
        let lastMark = marks.map(\.at).max() ?? i.openedAt
        // From a minute before the first marker, or from a little before the first sample kept if that is later.
        let earliest = input.history.points(of: trip.metric, from: firstMark - .seconds(60), to: firstMark).first?.at
        let start = max(firstMark - .seconds(60), (earliest ?? firstMark) - .seconds(5))
        let end = max(i.closedAt ?? input.now, lastMark) + .seconds(15)
        let points = input.history.points(of: trip.metric, from: start, to: end)
        let values = points.compactMap(\.value) + [trip.threshold].compactMap { $0 }
        var lo = min(0, values.min() ?? 0)
        var hi = values.max() ?? 1
        if hi <= lo { hi = lo + 1 }
        if input.unit == .ratio { lo = max(lo, 0) }
        // Four value ticks on round numbers (1, 2, 2.5 or 5 times a power of ten), with room above the top value.
        let valueStep = niceStep((hi - lo) * 1.1 / 4)
        lo = (lo / valueStep).rounded(.down) * valueStep
        hi = lo + 4 * valueStep

        let width = 900.0, height = 380.0
        let left = 80.0, right = 20.0, top = 40.0, bottom = 80.0
        let plotW = width - left - right, plotH = height - top - bottom
        let span = max(1, Double((end - start).milliseconds))
        func x(_ t: Timestamp) -> Double { left + Double((t - start).milliseconds) / span * plotW }
        func y(_ v: Double) -> Double { top + plotH - (v - lo) / (hi - lo) * plotH }
        func f(_ d: Double) -> String { String(Double(Int((d * 10).rounded())) / 10) }
        func text(_ s: String) -> String {
            s.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
                .replacing("\"", with: "&quot;")
        }
        func fmt(_ v: Double) -> String { ValueFormat.format(v, unit: input.unit) }

        var out = """
            <?xml version="1.0" encoding="UTF-8"?>
            <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <title>Incident \(text(i.id)): \(text(trip.metric)) of \(text(i.service))</title>
            <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="#ffffff"/>
            <text x="\(f(left))" y="22" font-size="15" font-weight="bold">\(text(trip.trigger)): \
            \(text(trip.metric)) of \(text(i.service)), incident \(text(i.id))</text>

            """
        // Axes, with value ticks on the left and time ticks (seconds from the deploy or the first marker) below.
        out +=
            "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\" stroke=\"#444\"/>\n"
        out +=
            "<line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" stroke=\"#444\"/>\n"
        for k in 0...4 {
            let v = lo + (hi - lo) * Double(k) / 4
            out +=
                "<line x1=\"\(f(left))\" y1=\"\(f(y(v)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y(v)))\" stroke=\"#eee\"/>\n"
            out +=
                "<text x=\"\(f(left - 6))\" y=\"\(f(y(v) + 4))\" text-anchor=\"end\" fill=\"#444\">\(text(fmt(v)))</text>\n"
        }
        let origin = input.deployedAt ?? firstMark
        let totalSeconds = Double((end - start).milliseconds) / 1000
        let step = [5.0, 10, 15, 30, 60, 120, 300, 600, 1800, 3600].first { totalSeconds / $0 <= 8 } ?? 7200
        var tick = (Double((start - origin).milliseconds) / 1000 / step).rounded(.up) * step
        while tick <= Double((end - origin).milliseconds) / 1000 {
            let t = origin + Interval(milliseconds: Int64(tick * 1000))
            out +=
                "<text x=\"\(f(x(t)))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\" fill=\"#444\">\(tick >= 0 ? "+" : "")\(Int(tick))s</text>\n"
            tick += step
        }
        out +=
            "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 44))\" text-anchor=\"middle\" fill=\"#444\">seconds from \(input.deployedAt == nil ? "the first breach" : "the deploy of \(text(i.fromVersion))") (\(text(origin.iso8601)))</text>\n"

        // The threshold, labelled on the line.
        if let th = trip.threshold, th.isFinite {
            out +=
                "<line data-line=\"threshold\" x1=\"\(f(left))\" y1=\"\(f(y(th)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y(th)))\" stroke=\"#d62728\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>\n"
            out +=
                "<text x=\"\(f(left + plotW - 4))\" y=\"\(f(y(th) - 5))\" text-anchor=\"end\" fill=\"#d62728\">threshold \(text(fmt(th)))</text>\n"
        }
        // The metric: one polyline per run of points with data (no-data leaves a gap).
        var runs: [[SampleHistory.Point]] = [[]]
        for p in points {
            if p.value == nil {
                if !(runs.last?.isEmpty ?? true) { runs.append([]) }
            } else {
                runs[runs.count - 1].append(p)
            }
        }
        for run in runs where !run.isEmpty {
            let coords = run.map { "\(f(x($0.at))),\(f(y($0.value ?? 0)))" }.joined(separator: " ")
            if run.count == 1 {
                out +=
                    "<circle cx=\"\(f(x(run[0].at)))\" cy=\"\(f(y(run[0].value ?? 0)))\" r=\"2\" fill=\"#1f77b4\"/>\n"
            } else {
                out +=
                    "<polyline data-line=\"metric\" points=\"\(coords)\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>\n"
            }
        }
        if let last = points.last(where: { $0.value != nil }) {
            out +=
                "<text x=\"\(f(min(x(last.at) + 4, left + plotW - 4)))\" y=\"\(f(y(last.value ?? 0) - 6))\" text-anchor=\"end\" fill=\"#1f77b4\">\(text(trip.metric))</text>\n"
        }
        if points.allSatisfy({ $0.value == nil }) {
            out +=
                "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" fill=\"#888\">no samples of \(text(trip.metric)) kept for this period</text>\n"
        }
        // Markers: a vertical line each, labelled at the top (staggered so close ones stay readable).
        for (n, m) in marks.enumerated() {
            let mx = f(x(m.at))
            let ly = top + 12 + Double(n) * 14
            out +=
                "<g data-marker=\"\(m.name)\" data-at=\"\(m.at.iso8601)\"><line x1=\"\(mx)\" y1=\"\(f(top))\" x2=\"\(mx)\" y2=\"\(f(top + plotH))\" stroke=\"#555\" stroke-dasharray=\"2 3\"/>"
                + "<text x=\"\(f(x(m.at) + 3))\" y=\"\(f(ly))\" fill=\"#222\">\(text(m.label))</text></g>\n"
        }
        out +=
            "<text x=\"\(f(left))\" y=\"\(f(height - 16))\" fill=\"#666\">\(text(IncidentReport.outcomeText(i))); times in UTC from \(text(start.iso8601)) to \(text(end.iso8601))</text>\n"
        out += "</svg>\n"
        return out
    }
}
