import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService
import RollbackDemo
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `rollbackd demo` (`make demo`): a bad release detected, rolled back, verified and reported, on loopback.
/// Exit 0 when the rollback was verified, 1 otherwise, 128+N when interrupted by signal N (after cleaning up).
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract:
            "Show a bad release being detected, rolled back and verified (no root, no systemd, nothing to configure)."
    )

    @Flag(help: "Tell the story on stderr and print a JSON summary on stdout.")
    var json = false

    @Option(
        name: .customLong("work-dir"),
        help: "Where to lay out releases, state and logs (default: a new /tmp/rollbackd-demo-XXXXXX).")
    var workDir: String?

    @Option(
        name: .customLong("service-binary"),
        help: "The demo service (default: rollbackd-demo-service next to this executable).")
    var serviceBinary: String?

    @Option(help: "Instances of the demo service.")
    var instances: Int = 3

    @Option(name: .customLong("error-rate"), help: "Share of v2's API requests that fail (0…1).")
    var errorRate: Double = 0.3

    @Flag(
        name: .customLong("no-journal"),
        help: "Do not write to journald even when its socket exists (events.jsonl only).")
    var noJournal = false

    func validate() throws {
        guard (1...16).contains(instances) else { throw ValidationError("--instances must be 1…16") }
        guard errorRate > 0.1, errorRate <= 1 else {
            throw ValidationError("--error-rate must be above the 10% trigger and at most 1")
        }
    }

    func run() async throws {
        var options = Demo.Options(
            serviceBinary: serviceBinary ?? Self.besideExecutable("rollbackd-demo-service"),
            workDirectory: workDir, instances: instances, badErrorRate: errorRate)
        if noJournal { options.journal = false }
        let console = DemoConsole(fd: json ? 2 : 1)
        let demo = Task { await Demo.run(options, console: console) }
        let signals = SignalWatcher([SIGINT, SIGTERM])
        let stream = signals.signals
        let caught = Mutex<Int32?>(nil)
        let watcher = Task {
            for await sig in stream {
                caught.withLock { $0 = sig }
                demo.cancel()
                return
            }
        }
        let summary = await demo.value
        watcher.cancel()
        withExtendedLifetime(signals) {}
        if json { print(summary.json.serialized) }
        if let sig = caught.withLock({ $0 }) { throw ExitCode(128 + sig) }
        if summary.outcome != "verified" { throw ExitCode(1) }
    }

    /// A file in the directory of the running executable (/proc/self/exe).
    static func besideExecutable(_ name: String) -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return name }
        let exe = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return FileIO.directory(of: exe) + "/" + name
    }
}
