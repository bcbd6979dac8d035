import ArgumentParser
import RollbackCore
import RollbackSystem
import RollbackService

/// Options shared by the commands that talk to the running daemon.
struct SocketOption: ParsableArguments {
    @Option(help: "The daemon's control socket.")
    var socket: String = ControlClient.defaultSocket
}

/// Sends one request to the daemon; prints its message (or the JSON with --json); exit 1 when refused.
func control(_ members: [(key: String, value: JSONValue)], socket: String, json: Bool = false, printText: Bool = false)
    throws
{
    let response: JSONValue
    do {
        response = try ControlClient.send(.object(members), socket: socket)
    } catch {
        Terminal.writeError("rollbackd: \(error)")
        throw ExitCode(1)
    }
    guard case .bool(true)? = response["ok"] else {
        if case let .string(message)? = response["error"] { Terminal.writeError("rollbackd: \(message)") }
        throw ExitCode(1)
    }
    if json, let report = response["report"] {
        print(report.serialized)
    } else if printText, case let .string(text)? = response["text"] {
        print(text, terminator: "")
    } else if case let .string(message)? = response["message"] {
        print(message)
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show triggers, last values, releases, incidents and pending approvals.")
    @OptionGroup var socket: SocketOption
    @Flag(help: "Print the status as JSON.") var json = false
    func run() throws {
        try control([("command", .string("status"))], socket: socket.socket, json: json, printText: true)
    }
}

struct Approve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Approve the prepared rollback of an incident (automation semi).")
    @Argument(help: "The incident id.") var id: String
    @OptionGroup var socket: SocketOption
    func run() throws { try control([("command", .string("approve")), ("id", .string(id))], socket: socket.socket) }
}

struct Deny: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Deny the prepared rollback of an incident.")
    @Argument(help: "The incident id.") var id: String
    @OptionGroup var socket: SocketOption
    func run() throws { try control([("command", .string("deny")), ("id", .string(id))], socket: socket.socket) }
}

struct Rearm: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-arm automatic rollbacks after a failed rollback or verification.")
    @OptionGroup var socket: SocketOption
    func run() throws { try control([("command", .string("rearm"))], socket: socket.socket) }
}

struct Pause: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a maintenance window: every trigger notifies only.")
    @Option(name: .customLong("for"), help: "How long, e.g. 30m (default: until rollbackd resume).") var duration:
        String?
    @OptionGroup var socket: SocketOption
    func run() throws {
        var members: [(key: String, value: JSONValue)] = [("command", .string("pause"))]
        if let duration { members.append(("for", .string(duration))) }
        try control(members, socket: socket.socket)
    }
}

struct Resume: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "End a maintenance window.")
    @OptionGroup var socket: SocketOption
    func run() throws { try control([("command", .string("resume"))], socket: socket.socket) }
}

struct MarkKnownGood: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mark-known-good",
        abstract: "Mark a release seen live as known-good (a rollback target).")
    @Argument(help: "The version.") var version: String
    @OptionGroup var socket: SocketOption
    func run() throws {
        try control([("command", .string("mark-known-good")), ("version", .string(version))], socket: socket.socket)
    }
}

/// `rollbackd rollback [--to VERSION] [--dry-run]`: a manual rollback through the running daemon, with the same
/// target gate, executor gates, phases, verification, journald and webhook events as an automatic one.
struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Roll back now through the running daemon (or print the plan with --dry-run)."
    )
    @Option(help: "The release to roll back to (default: the most recent known-good one).") var to: String?
    @Flag(name: .customLong("dry-run"), help: "Print the plan and precheck it; change nothing (needs --to).")
    var dryRun = false
    @Option(help: "The thresholds file (for --dry-run).") var config: String = ConfigFile.defaultPath
    @OptionGroup var socket: SocketOption

    func run() async throws {
        if dryRun {
            guard let to else {
                Terminal.writeError("rollbackd: --dry-run needs --to VERSION")
                throw ExitCode(2)
            }
            let plan = try Plan.parse(["--config", config, "--to", to])
            try await plan.run()
            return
        }
        var members: [(key: String, value: JSONValue)] = [("command", .string("rollback"))]
        if let to { members.append(("to", .string(to))) }
        try control(members, socket: socket.socket)
    }
}
