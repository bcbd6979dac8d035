#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking work (poll, waitpid, curl_multi_poll) on a dedicated OS thread so it never occupies one of the
/// few threads of Swift's cooperative pool (two on a 2-core machine).
public enum BlockingThread {
    private final class Box: @unchecked Sendable {
        let work: () -> Void
        init(_ work: @escaping () -> Void) { self.work = work }
    }

    /// Starts `work` on a new detached thread; false when no thread could be made (`work` then did not run).
    private static func spawn(_ work: @escaping () -> Void) -> Bool {
        let unmanaged = Unmanaged.passRetained(Box(work))
        var thread = pthread_t()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        let rc = pthread_create(
            &thread, &attr,
            { raw in
                guard let raw else { return nil }
                Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().work()
                return nil
            }, unmanaged.toOpaque())
        pthread_attr_destroy(&attr)
        if rc != 0 { unmanaged.release() }
        return rc == 0
    }

    /// Runs `body` on its own thread and returns its result.
    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let work = { continuation.resume(returning: body()) }
            if !spawn(work) {
                // No thread could be made: run inline rather than lose the work.
                work()
            }
        }
    }

    /// Starts a long-running loop (a driver that polls) on its own thread; false when no thread could be made.
    public static func start(_ body: @escaping @Sendable () -> Void) -> Bool {
        spawn(body)
    }
}
