#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService

/// `rollbackd notify-drill` (hidden, test-only until the daemon exists): runs the real notifier of a
/// thresholds.json — journald plus every configured webhook through the durable spool — produces N drill events
/// and/or resumes what the spool holds, and optionally waits until everything is delivered. The fault tests kill
/// it with SIGKILL mid-delivery and start it again to show the spool is resumed.
struct NotifyDrill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notify-drill",
        abstract: "Test-only: send drill events through journald and the configured webhooks (durable spool).",
        shouldDisplay: false
    )

    @Option(help: "The thresholds file whose notify section is used.")
    var config: String = ConfigFile.defaultPath

    @Option(help: "State directory (the spool lives in <dir>/spool/webhooks).")
    var stateDir: String = "/var/lib/rollbackd"

    @Option(help: "Drill events to produce.")
    var count: Int = 0

    @Option(help: "Incident id the drill events carry.")
    var incident: String = "drill"

    @Option(help: "Wait this long (e.g. 30s) for the spool to drain; exit 1 if it does not.")
    var wait: String?

    @Option(help: "Backoff after the first failed attempt (default 1s).")
    var initialBackoff: String?

    @Option(help: "Longest backoff (default 5m).")
    var maxBackoff: String?

    @Option(help: "Notifications sent at once per webhook (default 8).")
    var batchSize: Int?

    @Option(help: "auto, journal or stderr.")
    var journal: String = "auto"

    func run() async throws {
        let loaded = try loadConfigOrExit(config)
        guard let target = JournalTarget(rawValue: journal) else {
            throw ValidationError("--journal: auto, journal or stderr")
        }
        var policy = DeliveryPolicy()
        if let s = initialBackoff {
            guard let v = Interval(parsing: s) else { throw ValidationError("--initial-backoff \(s): not a duration") }
            policy.initialBackoff = v
        }
        if let s = maxBackoff {
            guard let v = Interval(parsing: s) else { throw ValidationError("--max-backoff \(s): not a duration") }
            policy.maxBackoff = v
        }
        if let n = batchSize { policy.batchSize = max(1, n) }
        var waitFor: Interval?
        if let s = wait {
            guard let v = Interval(parsing: s) else { throw ValidationError("--wait \(s): not a duration") }
            waitFor = v
        }
        let t = loaded.thresholds
        let notifier = EventNotifier(
            config: t.notify, service: t.service,
            spoolDirectory: EventNotifier.spoolDirectory(stateDirectory: stateDir),
            policy: policy, journalWriter: JournalWriter(target: target))
        await notifier.start()
        for i in 0..<max(0, count) {
            let event = Event(
                kind: .decision, at: SystemTime.now(),
                message: "notify drill event \(i + 1) of \(count) for \(t.service)", severity: .critical,
                incident: incident, trigger: "drill", automation: .manual, decision: "notify",
                reason: "notify-drill", dryRun: true, extra: ["drill_seq": String(i)])
            await notifier.notify(event)
        }
        print("ENQUEUED \(count)")
        fflush(nil)
        var drained = true
        if let waitFor { drained = await notifier.drain(timeout: waitFor) }
        let pending = await notifier.pending()
        let stats = await notifier.stats()
        await notifier.stop()
        let delivered = stats.values.map(\.delivered).reduce(0, +)
        let dropped = stats.values.map(\.dropped).reduce(0, +)
        print("DELIVERED \(delivered) DROPPED \(dropped) PENDING \(pending)")
        if !drained { throw ExitCode(1) }
    }
}
