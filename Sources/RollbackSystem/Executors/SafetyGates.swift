import RollbackCore

/// The optional pre-rollback backup hook (`rollback.backup`): an argv run before an automatic rollback with
/// `ROLLBACKD_BACKUP_NAME=pre-rollback-<UTC timestamp>` (plus FROM/TO/INCIDENT) in its environment. The rollback
/// goes ahead only when it exits 0 within the phase timeout.
public enum BackupHook {
    public struct Result: Sendable, Equatable {
        public var name: String
        public var seconds: Double
        /// The hook's standard output, trimmed (e.g. where it put the backup).
        public var output: String
    }

    /// `pre-rollback-20261122T135300Z`.
    public static func backupName(at: Timestamp) -> String { "pre-rollback-\(at.compactUTC)" }

    public static func run(_ argv: [String], at: Timestamp, from: String, to: String, incident: String,
                           timeout: Interval) async throws(ExecutorError) -> Result {
        let name = backupName(at: at)
        let env = ["ROLLBACKD_BACKUP_NAME": name, "ROLLBACKD_FROM": from, "ROLLBACKD_TO": to, "ROLLBACKD_INCIDENT": incident]
        let r: ProcessResult
        do {
            r = try await Command.run(argv, strategy: "backup", environment: env, timeout: timeout)
        } catch {
            throw ExecutorError("backup", "the pre-rollback backup \(name) failed, so the rollback did not start: \(error.message)")
        }
        return Result(name: name, seconds: r.seconds, output: ExecText.trim(r.stdoutText))
    }
}

/// The System half of the database gate: lists a release's migrations directory; `MigrationCheck` (Core) compares.
public enum ReleaseMigrations {
    /// File names in a migrations directory (hidden entries skipped).
    public static func list(directory: String) throws(ExecutorError) -> [String] {
        do {
            return try Paths.list(directory)
        } catch {
            throw ExecutorError("database", "cannot list the migrations directory: \(error.description)")
        }
    }

    /// Compares the migrations of two releases as configured by `rollback.migrationsDir`; nil when none is
    /// configured. The current release's directory must exist (otherwise the setting points nowhere and the gate
    /// would pass silently); a target without the directory has no migrations.
    public static func check(_ config: RollbackConfig, from: String, to: String) throws(ExecutorError) -> MigrationCheck? {
        guard config.migrationsDir != nil else { return nil }
        guard let currentDir = config.migrationsDirectory(for: from), let targetDir = config.migrationsDirectory(for: to) else {
            throw ExecutorError("database", "rollback.migrationsDir cannot be placed for strategy \(config.strategy.name)")
        }
        guard Paths.isDirectory(currentDir) else {
            throw ExecutorError("database", "\(currentDir) (rollback.migrationsDir of the current release \(from)) is not a directory")
        }
        let current = try list(directory: currentDir)
        let target = Paths.isDirectory(targetDir) ? try list(directory: targetDir) : []
        return MigrationCheck.compare(fromVersion: from, current: current, toVersion: to, target: target)
    }
}

/// Release tags of a git repository, for target selection (`rollback.gitTagsRepo`).
public enum GitTags {
    /// `git -C REPO tag --sort=-version:refname`: newest version first.
    public static func argv(repo: String) -> [String] { ["git", "-C", repo, "tag", "--sort=-version:refname"] }

    public static func list(repo: String, timeout: Interval = .seconds(10)) async throws(ExecutorError) -> [String] {
        let r = try await Command.run(argv(repo: repo), strategy: "git-tags", timeout: timeout)
        return parse(r.stdoutText)
    }

    static func parse(_ text: String) -> [String] {
        text.split(separator: "\n").map { ExecText.trim($0) }.filter { !$0.isEmpty }
    }
}
