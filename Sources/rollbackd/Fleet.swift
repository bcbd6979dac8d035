import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService

struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet", abstract: "Fleet mode: the fleet's state in etcd.", subcommands: [FleetStatusCommand.self]
    )
}

struct FleetStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Show the fleet's leader, every host with its live version, last report and evidence, and the standing decision (read from etcd)."
    )

    @Option(help: "The thresholds file with the fleet section.")
    var config: String = ConfigFile.defaultPath

    @Flag(help: "Print the status as JSON.") var json = false

    func run() async throws {
        let loaded = try loadConfigOrExit(config)
        guard let fleet = loaded.thresholds.fleet else {
            Terminal.writeError("rollbackd: \(config) has no fleet section: this service is guarded on one host")
            throw ExitCode(1)
        }
        do {
            let status = try await FleetStatus.read(fleet, now: SystemTime.now())
            print(json ? status.json.serialized : status.text, terminator: json ? "\n" : "")
        } catch {
            Terminal.writeError("rollbackd: \(error)")
            throw ExitCode(1)
        }
    }
}
