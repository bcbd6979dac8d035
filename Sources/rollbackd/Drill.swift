import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService

/// `rollbackd drill`: rehearse the configured rollback on a staging target (roll back, verify, roll forward) and
/// record the time to verified recovery in `<state dir>/drills.json`.
/// Exit 0 verified and rolled forward; 1 otherwise (or the drill could not start: nothing changed); 2 usage.
struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract:
            "Rehearse the configured rollback on a staging target: roll back, verify, roll forward; record the time to verified recovery."
    )

    @Option(help: "The thresholds file of the staging target.")
    var config: String = ConfigFile.defaultPath

    @Option(name: .customLong("state-dir"), help: "State directory (default: $STATE_DIRECTORY or /var/lib/rollbackd).")
    var stateDir: String?

    @Option(help: "The release to roll back to (default: the most recent known-good one in the state).")
    var to: String?

    @Option(name: .customLong("verify-for"), help: "How long to verify (default: safety.verifyFor).")
    var verifyFor: String?

    @Flag(help: "Print the drill record as JSON at the end.")
    var json = false

    func validate() throws {
        if let verifyFor, Interval(parsing: verifyFor).map({ $0.milliseconds > 0 }) != true {
            throw ValidationError("--verify-for \(verifyFor): not a duration such as \"30s\"")
        }
    }

    func run() async throws {
        let t = try loadConfigOrExit(config).thresholds
        let options = Drill.Options(
            stateDirectory: stateDir ?? StateDirectory.default, to: to,
            verifyFor: verifyFor.flatMap { Interval(parsing: $0) })
        let toStderr = json
        let record: DrillRecord
        do {
            record = try await Drill.run(t, options: options) { line in
                if toStderr { Terminal.writeError(line) } else { print(line) }
            }
        } catch {
            Terminal.writeError("rollbackd drill: \(error)")
            throw ExitCode(1)
        }
        if json {
            print(record.json.serialized)
        } else {
            let recovery = record.recoverySeconds.map { ", verified recovery in \(ValueFormat.trim($0))s" } ?? ""
            print(
                "drill \(record.outcome.rawValue)\(recovery); recorded in \(DrillLog(stateDirectory: options.stateDirectory).path)"
            )
        }
        if record.outcome != .verified { throw ExitCode(1) }
    }
}
