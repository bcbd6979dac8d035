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

    public static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let box = Box { continuation.resume(returning: body()) }
            let unmanaged = Unmanaged.passRetained(box)
            var thread = pthread_t()
            var attr = pthread_attr_t()
            pthread_attr_init(&attr)
            pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
            let rc = pthread_create(&thread, &attr, { raw in
                guard let raw else { return nil }
                let box = Unmanaged<Box>.fromOpaque(raw).takeRetainedValue()
                box.work()
                return nil
            }, unmanaged.toOpaque())
            pthread_attr_destroy(&attr)
            if rc != 0 {
                // No thread could be made: run inline rather than lose the work.
                unmanaged.takeRetainedValue().work()
            }
        }
    }
}
