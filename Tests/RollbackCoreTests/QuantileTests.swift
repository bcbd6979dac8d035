import Testing
@testable import RollbackCore

private func b(_ pairs: [(Double, Double)]) -> [HistogramBucket] {
    pairs.map { HistogramBucket(upperBound: $0.0, count: $0.1) }
}

/// Hand-computed expectations for `histogramQuantile`, including every special case Prometheus documents.
@Suite struct HistogramQuantileTests {
    // 100 observations: 10 ≤ 0.1 s, 50 in (0.1, 0.5], 30 in (0.5, 1], 10 above 1 s.
    static let latency = b([(0.1, 10), (0.5, 60), (1, 90), (.infinity, 100)])

    @Test(arguments: [
        (0.5, 0.42), // rank 50 in (0.1, 0.5]: 0.1 + 0.4 × (50 − 10) / 50
        (0.05, 0.05), // rank 5 in the lowest bucket, assumed to start at 0: 0.1 × 5 / 10
        (0.0, 0.0), // rank 0: the start of the lowest bucket
        (0.9, 1.0), // rank 90 exactly at the top of (0.5, 1]
        (0.75, 0.75), // rank 75 in (0.5, 1]: 0.5 + 0.5 × 15 / 30
        (0.95, 1.0), // rank 95 in the +Inf bucket: the upper bound of the second-highest bucket
        (1.0, 1.0),
    ])
    func interpolatesLinearlyWithinTheBucket(q: Double, expected: Double) {
        let r = histogramQuantile(q, Self.latency)
        #expect(abs(r.value - expected) < 1e-12, "q=\(q): \(r.value)")
        #expect(!r.fixedForMonotonicity)
    }

    @Test func outOfRangeQuantiles() {
        #expect(histogramQuantile(-0.1, Self.latency).value == -.infinity)
        #expect(histogramQuantile(1.1, Self.latency).value == .infinity)
        #expect(histogramQuantile(.nan, Self.latency).value.isNaN)
    }

    @Test func withoutAnInfBucketTheResultIsNaN() {
        #expect(histogramQuantile(0.5, b([(0.1, 10), (0.5, 60), (1, 100)])).value.isNaN)
    }

    @Test func fewerThanTwoBucketsGiveNaN() {
        #expect(histogramQuantile(0.5, b([(.infinity, 100)])).value.isNaN)
        #expect(histogramQuantile(0.5, []).value.isNaN)
    }

    @Test func noObservationsGiveNaN() {
        #expect(histogramQuantile(0.5, b([(0.1, 0), (1, 0), (.infinity, 0)])).value.isNaN)
    }

    @Test func aNonPositiveLowestBucketReturnsItsUpperBound() {
        // Rank 2.5 falls in the lowest bucket, whose upper bound −1 is not positive: no interpolation.
        #expect(histogramQuantile(0.25, b([(-1, 5), (0, 8), (.infinity, 10)])).value == -1)
        // Upper bound 0 exactly: also returned as is.
        #expect(histogramQuantile(0.1, b([(0, 5), (1, 8), (.infinity, 10)])).value == 0)
        // Rank 7 in (−1, 0]: normal interpolation, −1 + 1 × (7 − 5) / 3.
        let r = histogramQuantile(0.7, b([(-1, 5), (0, 8), (.infinity, 10)])).value
        #expect(abs(r - (-1 + 2.0 / 3)) < 1e-12)
    }

    @Test func nonMonotonicBucketsAreRaisedAndFlagged() {
        // 0.5 has fewer than 0.1: raised to 10. Rank 10 then lands at the top of the lowest bucket.
        let r = histogramQuantile(0.5, b([(0.1, 10), (0.5, 8), (1, 20), (.infinity, 20)]))
        #expect(r == QuantileResult(value: 0.1, fixedForMonotonicity: true))
        // Without the fix the answer would come from a negative bucket count.
        let r2 = histogramQuantile(0.75, b([(0.1, 10), (0.5, 8), (1, 20), (.infinity, 20)]))
        // Rank 15 in (0.5, 1] with 10 observations after the fix: 0.5 + 0.5 × 5 / 10.
        #expect(r2 == QuantileResult(value: 0.75, fixedForMonotonicity: true))
    }

    @Test func floatingPointNoiseIsIgnoredSilently() {
        let r = histogramQuantile(0.5, b([(0.1, 10), (0.5, 10 - 1e-14), (1, 20), (.infinity, 20)]))
        #expect(!r.fixedForMonotonicity)
        #expect(abs(r.value - 0.1) < 1e-9)
    }

    @Test func bucketsWithTheSameBoundAreMergedAndOrderDoesNotMatter() {
        // Two instances' histograms handed in together and shuffled: 0.1 → 5 + 5, +Inf → 10 + 10.
        let r = histogramQuantile(0.5, b([(.infinity, 10), (0.1, 5), (.infinity, 10), (0.1, 5)]))
        #expect(r.value == 0.1)
        let shuffled = histogramQuantile(0.5, [Self.latency[2], Self.latency[0], Self.latency[3], Self.latency[1]])
        #expect(abs(shuffled.value - 0.42) < 1e-12)
    }

    @Test func emptyBucketsBetweenAreSkipped() {
        // Nothing between 0.2 and 0.5: rank 5 stops at the first bucket reaching it.
        let r = histogramQuantile(0.5, b([(0.1, 4), (0.2, 5), (0.5, 5), (.infinity, 10)]))
        #expect(abs(r.value - 0.2) < 1e-12)
    }
}
