import RollbackCore

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
    public static func check(_ config: RollbackConfig, from: String, to: String) throws(ExecutorError)
        -> MigrationCheck?
    {
        guard config.migrationsDir != nil else { return nil }
        guard let currentDir = config.migrationsDirectory(for: from),
            let targetDir = config.migrationsDirectory(for: to)
        else {
            throw ExecutorError(
                "database", "rollback.migrationsDir cannot be placed for strategy \(config.strategy.name)")
        }
        guard Paths.isDirectory(currentDir) else {
            throw ExecutorError(
                "database", "\(currentDir) (rollback.migrationsDir of the current release \(from)) is not a directory")
        }
        let current = try list(directory: currentDir)
        let target = Paths.isDirectory(targetDir) ? try list(directory: targetDir) : []
        return MigrationCheck.compare(fromVersion: from, current: current, toVersion: to, target: target)
    }
}
