@testable import RollbackCore
import TestSupport
import Testing
@testable import RollbackService

/// `state.json` round trips whatever the engine holds, including the non-finite numbers JSON has no word for: a
/// histogram's `+Inf` bucket in the baseline histograms, a quantile bound above every bucket.
@Suite struct StateStoreTests {
    @Test func nonFiniteNumbersSaveAndLoad() throws {
        let dir = try ScratchDir("state-store")
        defer { dir.remove() }
        let at = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)
        let buckets = [HistogramBucket(upperBound: 0.5, count: 3), HistogramBucket(upperBound: .infinity, count: 4)]
        var state = EngineState()
        state.ledger.releases = [
            Release(
                version: "v2", firstSeenAt: at, liveSince: at, cleanSince: nil, knownGoodAt: nil, rolledBackFromAt: nil,
                baseline: ["p95": 0.2], baselineCounts: nil, baselineHistograms: ["p95": buckets])
        ]
        state.recentHistograms = ["p95": [TimedBuckets(at: at, buckets: buckets)]]
        var trigger = TriggerState()
        trigger.evidenceBoundary = .infinity
        trigger.lastThreshold = -.infinity
        state.triggers["slow"] = trigger
        let store = StateStore(directory: dir.sub("state"))
        try store.save(state)
        let loaded = try #require(try store.load())
        #expect(loaded == state)
        #expect(loaded.ledger.release("v2")?.baselineHistograms?["p95"]?.last?.upperBound == .infinity)
    }
}
