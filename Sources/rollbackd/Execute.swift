import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService

/// `rollbackd execute`: the privileged executor, one connection on stdin/stdout (rollbackd-exec@.service).
/// Exit statuses: 0 the rollback succeeded, 1 refused or failed, 2 a bad request or not started on a socket.
struct Execute: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The privileged executor: one rollback request on stdin (started by rollbackd-exec.socket).",
        discussion: "Reads the configuration and the watchdog's saved state itself, re-checks the gates, then executes."
    )

    @Option(help: "The default instance's thresholds file.")
    var config: String = ConfigFile.defaultPath

    @Option(name: .customLong("config-dir"), help: "Where an instance's NAME.json lives.")
    var configDir: String = "/etc/rollbackd"

    @Option(name: .customLong("daemon-state"), help: "The watchdog's state directory (read only).")
    var daemonState: String = "/var/lib/rollbackd"

    @Option(
        name: .customLong("state-dir"),
        help: "The executor's own journal and lock (default: $STATE_DIRECTORY or /var/lib/rollbackd-exec).")
    var stateDir: String?

    @Option(help: "Besides root, members of this group may ask.")
    var group: String = "rollbackd"

    @Option(
        name: .customLong("log-target"),
        help: "Where its entries go: auto (journald when its socket exists), journal or stderr.")
    var logTarget: String = "auto"

    func run() async throws {
        guard let target = JournalTarget(rawValue: logTarget) else {
            Terminal.writeError("rollbackd: --log-target must be auto, journal or stderr")
            throw ExitCode(2)
        }
        RollbackLogging.bootstrap(identifier: "rollbackd-exec", target: target)
        let paths = ExecServer.Paths(
            config: config, configDirectory: configDir, daemonState: daemonState,
            executorState: stateDir ?? StateDirectory.fromEnvironment ?? "/var/lib/rollbackd-exec")
        let code = await ExecServer(paths: paths, group: group, journal: JournalWriter(target: target)).serve(
            input: 0, output: 1)
        if code != 0 { throw ExitCode(code) }
    }
}
