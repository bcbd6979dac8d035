#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService

/// Exit statuses: 0 every metric had a value in the last tick, 1 invalid configuration, 2 usage,
/// 3 some metric had no data in the last tick.
struct Sample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sample every metric and print what the watchdog sees, without acting on it."
    )

    @Option(help: "The thresholds file.")
    var config: String = ConfigFile.defaultPath

    @Option(help: "Number of ticks, taken at the configured interval.")
    var count: Int = 1

    @Flag(help: "Print JSON lines (one per metric per tick, then one for the version).")
    var json = false

    func validate() throws {
        guard (1...100_000).contains(count) else { throw ValidationError("--count must be between 1 and 100000") }
    }

    func run() async throws {
        let thresholds = try loadConfigOrExit(config, printWarnings: true).thresholds
        let sampler = Sampler(thresholds: thresholds)
        var last: SamplerTick?
        for i in 1...count {
            let tick = await sampler.tick(now: SystemTime.now())
            print(
                json
                    ? TickFormat.jsonLines(tick, index: i, thresholds: thresholds)
                    : TickFormat.text(tick, index: i, thresholds: thresholds), terminator: "")
            fflush(nil) // one tick at a time, also through a pipe
            last = tick
            if i < count {
                let wait = max(0, thresholds.interval.seconds - tick.seconds)
                try await Task.sleep(for: .milliseconds(Int64(wait * 1000)))
            }
        }
        if let last, last.samples.values.contains(where: { $0.number == nil }) { throw ExitCode(3) }
    }
}
