import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService

/// `rollbackd history`: the audit trail read back from journald, as a timeline per incident.
/// Exit statuses: 0 (also when nothing matched), 1 when the journal cannot be read, 2 usage.
struct History: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print rollbackd's decisions and actions from the journal, as a timeline per incident."
    )

    @Option(
        help:
            "Only events journald received at or after this time: RFC 3339 (2026-11-22T13:00:00Z), @<unix seconds>, or a duration ago (90m, 2h, 1d)."
    )
    var since: String?

    @Option(help: "Only events received at or before this time (same forms as --since).")
    var until: String?

    @Option(help: "Only the events of this incident.")
    var incident: String?

    @Option(help: "The SYSLOG_IDENTIFIER the events were written with (notify.journal.identifier).")
    var identifier: String = "rollbackd"

    @Option(help: "Read journal files from this directory instead of the system journal.")
    var directory: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Flag(help: "Print the path of the incident's chart (incidents/<id>.svg in the state directory); needs --incident.")
    var chart = false

    @Option(name: .customLong("state-dir"), help: "The daemon's state directory, for --chart.")
    var stateDir: String = StateDirectory.default

    func validate() throws {
        if chart && incident == nil { throw ValidationError("--chart needs --incident ID") }
        if let since, HistoryReport.parseTime(since) == nil {
            throw ValidationError("--since \(since): not a time (RFC 3339, @<unix seconds>, or a duration like 2h)")
        }
        if let until, HistoryReport.parseTime(until) == nil {
            throw ValidationError("--until \(until): not a time (RFC 3339, @<unix seconds>, or a duration like 2h)")
        }
    }

    func run() throws {
        if chart, let incident {
            let writer = IncidentReportWriter(stateDirectory: stateDir)
            let path = writer.chartPath(incident)
            guard (try? IncidentReportWriter.validate(id: incident)) != nil, FileIO.exists(path) else {
                Terminal.writeError(
                    "rollbackd history: no chart for incident \(incident) in \(writer.directory) (is --state-dir right?)"
                )
                throw ExitCode(1)
            }
            print(path)
            return
        }
        let query = JournalQuery(
            identifier: identifier, since: since.flatMap { HistoryReport.parseTime($0) },
            until: until.flatMap { HistoryReport.parseTime($0) }, incident: incident,
            directory: directory)
        do {
            let reader = try JournalReader(directory: directory)
            let groups = HistoryReport.group(try reader.events(query))
            print(json ? HistoryReport.json(groups) : HistoryReport.text(groups), terminator: "")
        } catch {
            Terminal.writeError("rollbackd history: \(error)")
            throw ExitCode(1)
        }
    }
}
