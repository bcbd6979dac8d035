import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService
import RollbackDemo
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// `rollbackd demo` (`make demo`): a bad release detected, rolled back, verified and reported, on loopback; with
/// `--fleet N` (`make demo-fleet`) the same on N hosts coordinated through a 3-member etcd (`FleetDemo`).
/// Exit 0 when the rollback was verified (on every host), 1 otherwise, 128+N when interrupted by signal N (after
/// cleaning up).
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

    @Option(help: "Instances of the demo service (default 3; with --fleet, per host, default 1).")
    var instances: Int?

    @Option(
        help:
            "Run the fleet demo: this many hosts (2…9), each its own `rollbackd run`, one leader deciding through a 3-member etcd on loopback (needs Debian's etcd-server)."
    )
    var fleet: Int?

    @Option(help: "With --fleet: the etcd executable (default: etcd on PATH or in /usr/bin).")
    var etcd: String?

    @Option(name: .customLong("error-rate"), help: "Share of v2's API requests that fail (0…1).")
    var errorRate: Double = 0.3

    @Flag(
        name: .customLong("no-journal"),
        help: "Do not write to journald even when its socket exists (events.jsonl only).")
    var noJournal = false

    func validate() throws {
        if let instances, !(1...16).contains(instances) { throw ValidationError("--instances must be 1…16") }
        if let fleet, !FleetDemo.hostRange.contains(fleet) {
            throw ValidationError(
                "--fleet must be \(FleetDemo.hostRange.lowerBound)…\(FleetDemo.hostRange.upperBound) hosts")
        }
        guard errorRate > 0.1, errorRate <= 1 else {
            throw ValidationError("--error-rate must be above the 10% trigger and at most 1")
        }
    }

    func run() async throws {
        let service = serviceBinary ?? Self.besideExecutable("rollbackd-demo-service")
        let console = DemoConsole(fd: json ? 2 : 1)
        if let fleet {
            let options = FleetDemo.Options(
                rollbackdBinary: Self.executable(), serviceBinary: service, etcdBinary: etcd, workDirectory: workDir,
                hosts: fleet, instances: instances ?? 1, badErrorRate: errorRate)
            let (summary, signal) = await Self.interruptible { await FleetDemo.run(options, console: console) }
            if json { print(summary.json.serialized) }
            if let signal { throw ExitCode(128 + signal) }
            if summary.outcome != "verified" { throw ExitCode(1) }
            return
        }
        var options = Demo.Options(
            serviceBinary: service, workDirectory: workDir, instances: instances ?? 3, badErrorRate: errorRate)
        if noJournal { options.journal = false }
        let single = options
        let (summary, signal) = await Self.interruptible { await Demo.run(single, console: console) }
        if json { print(summary.json.serialized) }
        if let signal { throw ExitCode(128 + signal) }
        if summary.outcome != "verified" { throw ExitCode(1) }
    }

    /// Runs a demo in a task that SIGINT or SIGTERM cancels (the demo cleans up); returns its result and the
    /// signal that interrupted it, if one did.
    static func interruptible<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> (T, Int32?) {
        let demo = Task { await body() }
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
        return (summary, caught.withLock { $0 })
    }

    /// A file in the directory of the running executable.
    static func besideExecutable(_ name: String) -> String {
        FileIO.directory(of: executable()) + "/" + name
    }

    /// The running executable (/proc/self/exe).
    static func executable() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        guard n > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
