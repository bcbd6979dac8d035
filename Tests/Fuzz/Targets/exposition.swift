import RollbackCore

/// The Prometheus text exposition parser and what a scrape does with it: the series a `scrape` metric selects
/// (error ratio, histogram buckets, gauge), two snapshots in a counter window (the input split at its middle line:
/// resets, vanished and new series), the increase, and the quantile of the buckets.
/// One selector per metric for the whole run, as a scrape source keeps its own (their regular expressions are
/// compiled once and their match memo grows across inputs).
let selectors: [ScrapeSelector] = {
    let table = """
        {"service": "fuzz", "interval": "1s", "instances": ["http://127.0.0.1:1"],
         "metrics": {
           "errors": {"type": "scrape", "path": "/metrics", "measure": "errorRatio", "counter": "http_requests_total",
                      "errorLabels": {"code": "5.."}, "labels": {"handler": "/api/.*"}},
           "p95": {"type": "scrape", "path": "/metrics", "measure": "quantile", "histogram": "http_request_duration_seconds"},
           "depth": {"type": "scrape", "path": "/metrics", "measure": "gauge", "gauge": "queue_depth"},
           "rate": {"type": "scrape", "path": "/metrics", "measure": "rate", "counter": "orders"}},
         "triggers": [{"name": "e", "metric": "errors", "condition": {"above": 0.1}, "severity": "critical",
                       "respondWithin": "5m", "automation": "manual"}],
         "rollback": {"strategy": "command", "command": {"argv": ["/bin/true"]}}}
        """
    let loaded: LoadedThresholds
    do { loaded = try Thresholds.load(text: table, file: "fuzz-table.json") } catch {
        fatalError("the fuzz target's own table does not load: \(error)")
    }
    return loaded.thresholds.metrics.compactMap {
        if case let .scrape(c) = $0.source { return ScrapeSelector(c) }
        return nil
    }
}()

/// Builds the selectors before the first input, so their one-time allocations are not taken for a leak of it.
@_cdecl("LLVMFuzzerInitialize")
public func initializeExposition(_ argc: OpaquePointer?, _ argv: OpaquePointer?) -> CInt {
    _ = selectors.count
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExposition(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var cut = bytes.count / 2
    while cut < bytes.count, bytes[cut] != UInt8(ascii: "\n") { cut += 1 }
    let halves = [Array(bytes[..<cut]), Array(bytes[cut...])]
    for selector in selectors {
        var window = CounterWindow(window: .seconds(30))
        var at = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)
        for half in [bytes] + halves {
            guard let exposition = try? ExpositionParser.parse(half, keeping: selector.keptNames) else { continue }
            guard case let .series(values) = selector.select(exposition) else { continue }
            window.record(target: "t", CounterSnapshot(at: at, values: values))
            at = at + .seconds(1)
        }
        guard let increase = window.increase(target: "t", now: at) else { continue }
        _ = CounterMath.errorRatio([increase])
        _ = CounterMath.rate([increase])
        _ = histogramQuantile(selector.config.quantile, CounterMath.buckets([increase]))
    }
    return 0
}
