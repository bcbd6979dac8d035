import CSystemd
#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem

/// sd_notify(3) for Type=notify services: READY, STATUS, WATCHDOG, RELOADING, STOPPING. Without NOTIFY_SOCKET
/// (a terminal) every call is a no-op.
public struct SystemdNotify: Sendable {
    public init() {}

    public var enabled: Bool {
        guard let s = getenv("NOTIFY_SOCKET") else { return false }
        return s.pointee != 0
    }

    @discardableResult
    public func send(_ fields: String) -> Bool {
        sd_notify(0, fields) > 0
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }
    public func status(_ text: String) { send("STATUS=\(text)") }
    public func watchdog() { send("WATCHDOG=1") }
    public func stopping(_ text: String) { send("STOPPING=1\nSTATUS=\(text)") }

    /// RELOADING=1 with MONOTONIC_USEC (required by Type=notify-reload, harmless otherwise).
    public func reloading() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let usec = UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
        send("RELOADING=1\nMONOTONIC_USEC=\(usec)")
    }

    /// Half of WatchdogSec when the service manager asked for keep-alives (sd_watchdog_enabled(3)), else nil.
    public func watchdogInterval() -> Interval? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .ms(Int64(usec / 2000))
    }
}
