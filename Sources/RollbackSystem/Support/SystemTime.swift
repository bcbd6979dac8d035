#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// The system's wall clock.
public struct SystemTime: WallClock {
    public init() {}
    public func now() -> Timestamp { SystemTime.now() }
    public static func now() -> Timestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamp(millisecondsSinceEpoch: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000)
    }
    /// CLOCK_MONOTONIC in milliseconds, for durations and deadlines.
    public static func monotonicMs() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}
