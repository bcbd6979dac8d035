import Testing
@testable import RollbackCore

private func at(_ s: Int64) -> Timestamp { Timestamp(millisecondsSinceEpoch: 1_000_000_000 + s * 1000) }
private let ok = SeriesKey(id: "code=\"200\"")
private let err = SeriesKey(id: "code=\"500\"", isError: true)

/// Counter deltas over a window of ticks: resets, new and vanished series and instances.
@Suite struct CounterWindowTests {
    @Test func sumsDeltasOverTheWindowAcrossTargets() throws {
        var w = CounterWindow(window: .seconds(30))
        w.record(target: "a", CounterSnapshot(at: at(0), values: [ok: 100, err: 10]))
        w.record(target: "b", CounterSnapshot(at: at(0), values: [ok: 50, err: 0]))
        w.record(target: "a", CounterSnapshot(at: at(5), values: [ok: 190, err: 20]))
        w.record(target: "b", CounterSnapshot(at: at(5), values: [ok: 140, err: 0]))
        let incs = ["a", "b"].compactMap { w.increase(target: $0, now: at(5)) }
        #expect(incs.count == 2)
        let r = CounterMath.errorRatio(incs)
        // errors 10 of (90 + 10) + (90 + 0) = 190
        #expect(r.errors == 10)
        #expect(r.total == 190)
        #expect(CounterMath.rate(incs) == 38) // 100/5 + 90/5
    }

    @Test func aCounterResetCountsTheNewValue() throws {
        var w = CounterWindow(window: .seconds(60))
        w.record(target: "a", CounterSnapshot(at: at(0), values: [ok: 1000, err: 50]))
        w.record(target: "a", CounterSnapshot(at: at(5), values: [ok: 1100, err: 60]))
        // The process restarted: counters start again from zero.
        w.record(target: "a", CounterSnapshot(at: at(10), values: [ok: 30, err: 5]))
        let inc = try #require(w.increase(target: "a", now: at(10)))
        #expect(inc.perSeries[ok] == 130) // 100 + 30
        #expect(inc.perSeries[err] == 15) // 10 + 5
        #expect(inc.resets == 2)
    }

    @Test func aSeriesCreatedOnItsFirstIncrementCountsFromZero() throws {
        var w = CounterWindow(window: .seconds(60))
        w.record(target: "a", CounterSnapshot(at: at(0), values: [ok: 100]))
        // The first 500 creates the code="500" series.
        w.record(target: "a", CounterSnapshot(at: at(5), values: [ok: 120, err: 7]))
        let inc = try #require(w.increase(target: "a", now: at(5)))
        #expect(inc.perSeries[err] == 7)
        #expect(CounterMath.errorRatio([inc]).errors == 7)
        #expect(CounterMath.errorRatio([inc]).total == 27)
    }

    @Test func aNewInstanceContributesFromItsSecondScrape() throws {
        var w = CounterWindow(window: .seconds(60))
        w.record(target: "a", CounterSnapshot(at: at(0), values: [ok: 100]))
        w.record(target: "a", CounterSnapshot(at: at(5), values: [ok: 110]))
        w.record(target: "new", CounterSnapshot(at: at(5), values: [ok: 5000, err: 900]))
        #expect(w.increase(target: "new", now: at(5)) == nil)
        w.record(target: "new", CounterSnapshot(at: at(10), values: [ok: 5010, err: 900]))
        #expect(w.increase(target: "new", now: at(10))?.total == 10)
    }

    @Test func oneQuietTickDoesNotZeroTheRate() throws {
        var w = CounterWindow(window: .seconds(15))
        w.record(target: "a", CounterSnapshot(at: at(0), values: [ok: 0, err: 0]))
        w.record(target: "a", CounterSnapshot(at: at(5), values: [ok: 90, err: 10]))
        w.record(target: "a", CounterSnapshot(at: at(10), values: [ok: 90, err: 10])) // quiet
        let inc = try #require(w.increase(target: "a", now: at(10)))
        #expect(CounterMath.errorRatio([inc]).errors == 10)
        #expect(CounterMath.errorRatio([inc]).total == 100)
    }

    @Test func oldSnapshotsLeaveTheWindowButOneBaselineStays() throws {
        var w = CounterWindow(window: .seconds(10))
        for (t, v) in [(0, 0.0), (5, 50.0), (10, 60.0), (15, 70.0), (20, 80.0)] {
            w.record(target: "a", CounterSnapshot(at: at(Int64(t)), values: [ok: v]))
        }
        // Window (10, 20]: baseline at 10 (60) to 80.
        #expect(w.snapshots["a"]?.map(\.at) == [at(10), at(15), at(20)])
        let inc = try #require(w.increase(target: "a", now: at(20)))
        #expect(inc.total == 20)
        #expect(inc.seconds == 10)
    }

    @Test func aVanishedInstanceCountsUntilItAgesOut() throws {
        var w = CounterWindow(window: .seconds(10))
        w.record(target: "gone", CounterSnapshot(at: at(0), values: [err: 0]))
        w.record(target: "gone", CounterSnapshot(at: at(5), values: [err: 5]))
        // It stops answering; the other target keeps going.
        w.record(target: "a", CounterSnapshot(at: at(10), values: [ok: 0]))
        #expect(w.increase(target: "gone", now: at(10))?.total == 5)
        w.record(target: "a", CounterSnapshot(at: at(30), values: [ok: 10]))
        #expect(w.snapshots["gone"] == nil)
    }

    @Test func aSeriesThatVanishesAndReturnsIsNotCountedTwice() throws {
        var w = CounterWindow(window: .seconds(60))
        w.record(target: "a", CounterSnapshot(at: at(0), values: [ok: 100, err: 40]))
        w.record(target: "a", CounterSnapshot(at: at(5), values: [ok: 110]))
        w.record(target: "a", CounterSnapshot(at: at(10), values: [ok: 120, err: 42]))
        let inc = try #require(w.increase(target: "a", now: at(10)))
        #expect(inc.perSeries[err] == 2)
    }

    @Test func bucketIncreasesSumByUpperBound() throws {
        var w = CounterWindow(window: .seconds(60))
        func buckets(_ c: [Double]) -> [SeriesKey: Double] {
            var out: [SeriesKey: Double] = [:]
            for (le, v) in zip([0.1, 0.5, 1, .infinity], c) { out[SeriesKey(id: "", le: le)] = v }
            return out
        }
        w.record(target: "a", CounterSnapshot(at: at(0), values: buckets([100, 200, 300, 400])))
        w.record(target: "b", CounterSnapshot(at: at(0), values: buckets([0, 0, 0, 0])))
        w.record(target: "a", CounterSnapshot(at: at(5), values: buckets([105, 230, 245 + 100, 450])))
        w.record(target: "b", CounterSnapshot(at: at(5), values: buckets([5, 30, 45, 50])))
        let incs = ["a", "b"].compactMap { w.increase(target: $0, now: at(5)) }
        let summed = CounterMath.buckets(incs)
        #expect(
            summed == [
                HistogramBucket(upperBound: 0.1, count: 10), HistogramBucket(upperBound: 0.5, count: 60),
                HistogramBucket(upperBound: 1, count: 90), HistogramBucket(upperBound: .infinity, count: 100),
            ])
        #expect(abs(histogramQuantile(0.5, summed).value - 0.42) < 1e-12)
    }
}

@Suite struct LabelMatcherTests {
    @Test func matchersAreFullyAnchored() {
        let m = LabelMatchers(["code": "5.."])
        #expect(m.matches([PromLabel("code", "500")]))
        #expect(m.matches([PromLabel("code", "503"), PromLabel("method", "get")]))
        #expect(!m.matches([PromLabel("code", "5000")]))
        #expect(!m.matches([PromLabel("code", "200")]))
        #expect(!m.matches([]))
        #expect(m.matches([PromLabel("code", "599")])) // memoised answers stay right
        #expect(!m.matches([PromLabel("code", "5000")]))
    }

    @Test func aMissingLabelIsTheEmptyString() {
        #expect(LabelMatchers(["handler": ".*"]).matches([]))
        #expect(!LabelMatchers(["handler": ".+"]).matches([]))
        #expect(LabelMatchers([:]).matches([PromLabel("x", "y")]))
    }

    @Test func everyMatcherMustMatch() {
        let m = LabelMatchers(["code": "5..|429", "method": "GET|POST"])
        #expect(m.matches([PromLabel("method", "POST"), PromLabel("code", "429")]))
        #expect(!m.matches([PromLabel("method", "PUT"), PromLabel("code", "429")]))
        #expect(m.description == "{code=~\"5..|429\",method=~\"GET|POST\"}")
    }
}

@Suite struct ScrapeSelectorTests {
    func config(
        _ measure: ScrapeMeasure, counter: String? = nil, histogram: String? = nil, gauge: String? = nil,
        errorLabels: [String: String] = [:], labels: [String: String] = [:]
    ) -> ScrapeConfig {
        ScrapeConfig(
            targets: ["http://x/metrics"], measure: measure, counter: counter, errorLabels: errorLabels,
            labels: labels, histogram: histogram, gauge: gauge, quantile: 0.95, window: .seconds(30),
            http: HTTPOptions())
    }

    let text = """
        http_requests_total{code="200",handler="/api"} 90
        http_requests_total{code="500",handler="/api"} 10
        http_requests_total{code="200",handler="/health"} 1000
        latency_bucket{handler="/api",le="0.1"} 4
        latency_bucket{handler="/api",le="+Inf"} 9
        latency_bucket{handler="/api",le="fast"} 9
        inflight{worker="1"} 3
        inflight{worker="2"} 4

        """

    func selection(_ c: ScrapeConfig) throws -> ScrapeSelector.Selection {
        let s = ScrapeSelector(c)
        return s.select(try ExpositionParser.parse(Array(text.utf8), keeping: s.keptNames))
    }

    @Test func selectsCountersWithErrorsMarked() throws {
        let sel = try selection(
            config(
                .errorRatio, counter: "http_requests_total", errorLabels: ["code": "5.."], labels: ["handler": "/api"]))
        #expect(
            sel
                == .series([
                    SeriesKey(id: "code=\"200\",handler=\"/api\""): 90,
                    SeriesKey(id: "code=\"500\",handler=\"/api\"", isError: true): 10,
                ]))
    }

    @Test func selectsBucketsByBound() throws {
        let sel = try selection(config(.quantile, histogram: "latency"))
        #expect(
            sel
                == .series([
                    SeriesKey(id: "handler=\"/api\"", le: 0.1): 4, SeriesKey(id: "handler=\"/api\"", le: .infinity): 9,
                ]))
    }

    @Test func sumsGauges() throws {
        #expect(try selection(config(.gauge, gauge: "inflight")) == .gauge(7))
    }

    @Test func explainsWhatIsMissing() throws {
        #expect(try selection(config(.rate, counter: "nope")) == .missing("no nope samples in the exposition"))
        #expect(
            try selection(config(.rate, counter: "http_requests"))
                == .missing(
                    "no http_requests samples (the exposition has http_requests_total: set \"counter\": \"http_requests_total\")"
                ))
        #expect(
            try selection(config(.rate, counter: "http_requests_total", labels: ["handler": "/nothing"]))
                == .missing("no http_requests_total samples match {handler=~\"/nothing\"}"))
    }
}
