import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService
import RollbackVersion

@main
struct Rollbackd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollbackd",
        abstract: "An automatic, trigger-driven rollback watchdog.",
        version: RollbackVersion.current,
        subcommands: [
            Check.self, Status.self, Approve.self, Deny.self, Rearm.self, Pause.self, Resume.self,
            MarkKnownGood.self, RollbackCommand.self, Sample.self, History.self, Plan.self, Run.self, Execute.self,
            NotifyDrill.self, RunPlan.self,
            DemoCommand.self, DrillCommand.self, FleetCommand.self,
        ]
    )

    /// Usage errors exit 2 (not ArgumentParser's 64), so scripts can tell them from an invalid config (1).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                Terminal.writeError(fullMessage(for: error))
                exit(withError: ExitCode(2))
            }
            exit(withError: error)
        }
    }
}

/// Exit statuses: 0 valid, 1 invalid configuration, 2 usage (ArgumentParser's own).
struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate thresholds.json and print the effective trigger table."
    )

    @Argument(help: "The thresholds file.")
    var file: String = ConfigFile.defaultPath

    @Flag(help: "Print the effective table as JSON.")
    var json = false

    @Option(
        name: .customLong("state-dir"),
        help:
            "Also warn when this state directory's last successful rollback drill is older than 30 days (default: the default state directory when FILE is the default config)."
    )
    var stateDir: String?

    func run() throws {
        let loaded = try loadConfigOrExit(file, printWarnings: true)
        // The drill log belongs to an installation, not to a file: consulted for the installed config or
        // when a state directory is named, so checking an arbitrary file stays quiet.
        if let dir = stateDir ?? (file == ConfigFile.defaultPath ? StateDirectory.default : nil),
            let w = DrillLog(stateDirectory: dir).warning(now: SystemTime.now())
        {
            Terminal.writeError("warning: \(w)")
        }
        print(json ? TriggerTable.json(loaded.thresholds) : TriggerTable.text(loaded.thresholds), terminator: "")
    }
}

/// The configuration at `path`, or its errors on stderr and exit status 1: what every command that reads one does.
/// With `printWarnings`, the file's warnings go to stderr too.
func loadConfigOrExit(_ path: String, printWarnings: Bool = false) throws -> LoadedThresholds {
    switch ConfigFile.load(path: path) {
    case let .failure(error):
        Terminal.writeError(error.description)
        throw ExitCode(1)
    case let .success(loaded):
        if printWarnings { for w in loaded.warningLines { Terminal.writeError("warning: \(w)") } }
        return loaded
    }
}
