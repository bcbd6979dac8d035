import Testing

@testable import RollbackCore
@testable import RollbackSystem
import TestSupport

/// The counts behind counted samples, from real `prometheus_client` instances: what each tick added, summed exactly
/// over the instances (the evidence a trigger decides on, and what fleet mode will sum across hosts).
@Suite struct SamplingCountsTests {
    @Test func eachTickCountsWhatTheInstancesServedSinceThePreviousOne() async throws {
        async let a0 = ServerProcess.python("metrics_app.py")
        async let a1 = ServerProcess.python("metrics_app.py")
        let apps = try await [a0, a1]
        let sampler = Sampler(
            thresholds: try samplingThresholds(
                metrics: SamplingScrapeTests.metrics, instances: apps.map(\.base)))
        let at = { (s: Int64) in Timestamp(millisecondsSinceEpoch: 1_800_000_000_000 + s * 1000) }
        try await post("\(apps[0].base)/simulate?ok=50&errors=0&latency=0.01")
        _ = await sampler.tick(now: at(0))
        // Between two ticks: 18 ok + 2 errors on one instance, 27 ok + 3 errors on the other; all at 0.3 s.
        try await post("\(apps[0].base)/simulate?ok=18&errors=2&latency=0.3")
        try await post("\(apps[1].base)/simulate?ok=27&errors=3&latency=0.3")
        let second = await sampler.tick(now: at(5))
        #expect(second.counts["error_rate"] == Counts(events: 5, trials: 50), "\(second.counts)")
        // The quantile's buckets are this tick's increases: 50 requests, none within 0.25 s, all within 0.5 s.
        let buckets = try #require(second.histograms["latency_p95"])
        #expect(buckets.first { $0.upperBound == .infinity }?.count == 50)
        #expect(buckets.first { $0.upperBound == 0.25 }?.count == 0)
        #expect(buckets.first { $0.upperBound == 0.5 }?.count == 50)
        #expect(Counts.slower(than: 0.2, in: buckets)?.counts == Counts(events: 50, trials: 50))
        // Every probe answered: 0 unhealthy of 2 probed instances, this tick.
        #expect(second.counts["unhealthy"] == Counts(events: 0, trials: 2))
        // A tick with no new traffic adds nothing.
        let third = await sampler.tick(now: at(10))
        #expect(third.counts["error_rate"] == Counts(events: 0, trials: 0))
    }
}
