import Testing
@testable import RollbackCore

/// `CounterWindow` prunes once per tick and sums in one table (a performance change, Benchmarks/overhead); this
/// checks it against the straightforward algorithm it replaced, on random fleets: targets that come and go,
/// series created on their first increment or vanishing, counter resets, clock steps backwards.
@Suite struct CounterWindowEquivalenceTests {
    /// The previous implementation, kept as the reference.
    struct Reference {
        let window: Interval
        var snapshots: [String: [CounterSnapshot]] = [:]

        mutating func record(target: String, _ snapshot: CounterSnapshot) {
            var list = snapshots[target] ?? []
            list.removeAll { $0.at >= snapshot.at }
            list.append(snapshot)
            snapshots[target] = list
            prune(now: snapshot.at)
        }

        mutating func prune(now: Timestamp) {
            let start = now - window
            for (target, list) in snapshots {
                guard let baseline = list.lastIndex(where: { $0.at <= start }), baseline > 0 else { continue }
                snapshots[target] = Array(list[baseline...])
            }
            snapshots = snapshots.filter { $0.value.last.map { $0.at > now - window - window } ?? false }
        }

        func increase(target: String, now: Timestamp) -> TargetIncrease? {
            guard let list = snapshots[target] else { return nil }
            let start = now - window
            let from = list.lastIndex(where: { $0.at <= start }) ?? 0
            let used = list[from...].filter { $0.at <= now }
            guard used.count >= 2, let first = used.first, let last = used.last else { return nil }
            var lastSeen = first.values
            var inc: [SeriesKey: Double] = [:]
            var resets = 0
            for snap in used.dropFirst() {
                for (key, v) in snap.values {
                    let d: Double
                    if let prev = lastSeen[key] {
                        if v >= prev { d = v - prev } else { d = v; resets += 1 }
                    } else {
                        d = v
                    }
                    if d.isFinite { inc[key, default: 0] += d }
                    lastSeen[key] = v
                }
            }
            for key in first.values.keys where inc[key] == nil { inc[key] = 0 }
            return TargetIncrease(perSeries: inc, seconds: (last.at - first.at).seconds, resets: resets)
        }
    }

    /// A small deterministic generator (SplitMix64), so a failure reproduces.
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    @Test(arguments: 0..<40) func sameSnapshotsAndIncreasesAsTheReference(seed: Int) {
        var rng = Rng(state: UInt64(seed) &* 7919 &+ 1)
        let window = Interval.seconds(Int64(2 + rng.below(20)))
        var fast = CounterWindow(window: window)
        var reference = Reference(window: window)
        let keys = [
            SeriesKey(id: "code=\"200\""), SeriesKey(id: "code=\"500\"", isError: true),
            SeriesKey(id: "", le: 0.1), SeriesKey(id: "", le: .infinity),
        ]
        let targets = (0..<(1 + rng.below(6))).map { "http://t\($0)" }
        var counters: [String: [SeriesKey: Double]] = [:]
        var t: Int64 = 1_000_000_000
        for _ in 0..<(20 + rng.below(60)) {
            // Mostly forward by 1-5 s, sometimes a long gap, rarely a clock step backwards.
            switch rng.below(20) {
            case 0: t -= Int64(1 + rng.below(3)) * 1000
            case 1: t += Int64(10 + rng.below(60)) * 1000
            default: t += Int64(1 + rng.below(5)) * 1000
            }
            let now = Timestamp(millisecondsSinceEpoch: t)
            for target in targets where rng.below(5) != 0 { // some targets miss a tick
                var values = counters[target] ?? [:]
                for key in keys {
                    switch rng.below(12) {
                    case 0: values[key] = nil // vanishes
                    case 1: values[key] = Double(rng.below(5)) // reset
                    default:
                        if values[key] != nil || rng.below(3) == 0 { // created on first increment
                            values[key, default: 0] += Double(rng.below(50))
                        }
                    }
                }
                counters[target] = values
                fast.record(target: target, CounterSnapshot(at: now, values: values))
                reference.record(target: target, CounterSnapshot(at: now, values: values))
            }
            if rng.below(2) == 0 {
                fast.prune(now: now)
                reference.prune(now: now)
            }
            #expect(fast.snapshots == reference.snapshots, "seed \(seed) at \(t)")
            for target in targets {
                #expect(
                    fast.increase(target: target, now: now) == reference.increase(target: target, now: now),
                    "seed \(seed) target \(target) at \(t)")
            }
        }
    }
}
