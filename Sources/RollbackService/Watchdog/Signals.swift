import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Delivers SIGHUP, SIGTERM and SIGINT as an async stream instead of asynchronous handlers.
public final class SignalWatcher {
    public let signals: AsyncStream<Int32>
    private let sources: [DispatchSourceSignal]

    public init(_ numbers: [Int32] = [SIGHUP, SIGTERM, SIGINT]) {
        let (stream, cont) = AsyncStream.makeStream(of: Int32.self, bufferingPolicy: .bufferingNewest(8))
        signals = stream
        var made: [DispatchSourceSignal] = []
        for n in numbers {
            signal(n, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: n, queue: .global())
            source.setEventHandler { cont.yield(n) }
            source.resume()
            made.append(source)
        }
        sources = made
    }

    deinit {
        for s in sources { s.cancel() }
    }
}
