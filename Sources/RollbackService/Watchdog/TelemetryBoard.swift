import RollbackCore
import RollbackSystem
import Synchronization

/// The snapshot `/metrics` renders from: the daemon replaces it after each tick, command and rollback report, and
/// the exporter's threads read it under a lock held only for the copy, never waiting on the daemon's actor.
public final class TelemetryBoard: Sendable {
    private let snapshot: Mutex<TelemetrySnapshot>

    init(_ initial: TelemetrySnapshot) { snapshot = Mutex(initial) }

    func publish(_ s: TelemetrySnapshot) { snapshot.withLock { $0 = s } }

    public var current: TelemetrySnapshot { snapshot.withLock { $0 } }

    /// The exposition text, as of now.
    public func page() -> String { MetricsPage.render(current, now: SystemTime.now()) }
}
