import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService
#if canImport(Glibc)
import Glibc
#endif

/// `rollbackd run`: the daemon. Exit 1 when the configuration or saved state cannot be used at start.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the watchdog (systemd Type=notify service).")

    @Option(help: "The thresholds file.")
    var config: String = ConfigFile.defaultPath

    @Option(name: .customLong("state-dir"), help: "State directory (default: $STATE_DIRECTORY or /var/lib/rollbackd).")
    var stateDir: String?

    @Option(help: "Control socket (default: $RUNTIME_DIRECTORY/control.sock or /run/rollbackd/control.sock).")
    var socket: String?

    @Option(
        name: .customLong("log-target"),
        help: "Where events go: auto (journald when its socket exists), journal or stderr.")
    var logTarget: String = "auto"

    @Option(
        name: .customLong("exec-socket"),
        help:
            "Send rollbacks to the privileged executor at this socket (rollbackd-exec.socket) instead of running them in this process."
    )
    var execSocket: String?

    @Option(help: "The instance name the executor uses to find this watchdog's config and state (rollbackd@NAME).")
    var instance: String?

    func run() async throws {
        guard let target = JournalTarget(rawValue: logTarget) else {
            Terminal.writeError("rollbackd: --log-target must be auto, journal or stderr")
            throw ExitCode(2)
        }
        RollbackLogging.bootstrap(identifier: "rollbackd", target: target)
        if let name = instance, !ExecRequest.validInstance(name) {
            Terminal.writeError("rollbackd: --instance \"\(name)\" must be a plain name (letters, digits, _ . @ -)")
            throw ExitCode(2)
        }
        if instance != nil && execSocket == nil {
            Terminal.writeError("rollbackd: --instance only means something with --exec-socket")
            throw ExitCode(2)
        }
        let route: RealWorld.ExecutorRoute = execSocket.map { .socket(path: $0, instance: instance) } ?? .inProcess
        let state = stateDir ?? StateDirectory.default
        var socketPath = socket ?? ControlClient.defaultSocket
        if socket == nil, let rt = getenv("RUNTIME_DIRECTORY"),
            let first = String(cString: rt).split(separator: ":").first
        {
            socketPath = "\(first)/control.sock"
        }
        let hang = getenv("ROLLBACKD_TEST_HANG_AFTER_TICKS").flatMap { Int(String(cString: $0)) }
        let daemon: Daemon
        do {
            try FileIO.makeDirectories(state, mode: 0o700)
            daemon = try Daemon(
                options: DaemonOptions(configPath: config, stateDirectory: state, hangAfterTicks: hang),
                makeWorld: { t, dir in try RealWorld.make(t, stateDirectory: dir, journal: target, route: route) })
        } catch {
            Terminal.writeError("rollbackd: \(error)")
            throw ExitCode(1)
        }
        do {
            try FileIO.makeDirectories(FileIO.directory(of: socketPath), mode: 0o750)
            try ControlServer(path: socketPath, daemon: daemon).start()
        } catch {
            Terminal.writeError("rollbackd: control socket: \(error)")
            throw ExitCode(1)
        }
        let signals = SignalWatcher()
        await daemon.run(signals: signals.signals)
        withExtendedLifetime(signals) {}
    }
}
