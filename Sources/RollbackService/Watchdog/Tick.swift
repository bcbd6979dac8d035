import RollbackCore
import RollbackSystem

/// What a tick looks at: one sample per metric, the live version, the releases the strategy can deploy, and the
/// smoke URLs while a rollback is being verified. The daemon's world provides them, and so does a drill's.
public struct Senses: Sendable {
    public var sample: @Sendable (Timestamp) async -> SampledMetrics
    public var readVersion: @Sendable () async -> (version: String?, reason: String?)
    public var deployable: @Sendable () async -> Set<String>?
    public var smoke: @Sendable ([String]) async -> [String]

    public init(
        sample: @escaping @Sendable (Timestamp) async -> SampledMetrics,
        readVersion: @escaping @Sendable () async -> (version: String?, reason: String?),
        deployable: @escaping @Sendable () async -> Set<String>?,
        smoke: @escaping @Sendable ([String]) async -> [String]
    ) {
        self.sample = sample
        self.readVersion = readVersion
        self.deployable = deployable
        self.smoke = smoke
    }

    /// One look at the world, taken concurrently: what the engine's `tick` is fed. `smokeURLs` are checked (an
    /// empty list checks nothing); the daemon passes them only while it verifies a rollback.
    public func observe(at now: Timestamp, smokeURLs: [String]) async -> (
        observation: Observation, deployable: Set<String>?, sampleSeconds: [String: Double]
    ) {
        async let samples = sample(now)
        async let version = readVersion()
        async let releases = deployable()
        let smokeFailures = smokeURLs.isEmpty ? [] : await smoke(smokeURLs)
        let (s, v, d) = await (samples, version, releases)
        return (
            Observation(
                at: now, samples: s.values, counts: s.counts, histograms: s.histograms, version: v.version,
                versionReason: v.reason,
                smokeFailures: smokeFailures),
            d, s.seconds
        )
    }
}

/// The cadence of ticks on the monotonic clock, never overlapping: the next tick is due one interval after the
/// previous one was due; a tick that ends past its successor's slot is an overrun, and the schedule restarts one
/// interval from then. The daemon's loop and a drill's verification keep time the same way.
public struct TickSchedule: Sendable {
    /// Monotonic milliseconds at which the next tick is due.
    public private(set) var next: Int64

    /// The first slot one interval from now (the first tick ran just before).
    public init(startingAfter interval: Interval) {
        next = SystemTime.monotonicMs() + interval.milliseconds
    }

    /// Sleeps until the next tick is due (at once when it is already).
    public func sleepUntilDue() async {
        let wait = next - SystemTime.monotonicMs()
        if wait > 0 { try? await Task.sleep(for: .milliseconds(wait)) }
    }

    /// After a tick: moves to the next slot. True when the tick overran it; the schedule then restarts one
    /// interval from now rather than firing the missed slots back to back.
    public mutating func advance(by interval: Interval) -> Bool {
        next += interval.milliseconds
        guard SystemTime.monotonicMs() > next else { return false }
        next = SystemTime.monotonicMs() + interval.milliseconds
        return true
    }
}
