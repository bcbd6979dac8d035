/// The database gate. rollbackd never runs down-migrations: it rolls the application back, and the database is a
/// human's call. When the release being left carries migrations the target release does not know, the target's
/// code may not work against the migrated schema, so an automatic rollback is demoted to `semi` (a human approves)
/// unless the configuration says the schema changes are backward compatible (`migrationsCompatible`).
public struct MigrationCheck: Sendable, Equatable, Codable {
    public var fromVersion: String
    public var toVersion: String
    /// Migrations of the current release that the target lacks, sorted.
    public var unknownToTarget: [String]
    /// Migrations of the target the current release lacks (unusual: an out-of-order history), sorted.
    public var onlyInTarget: [String]

    public init(fromVersion: String, toVersion: String, unknownToTarget: [String], onlyInTarget: [String]) {
        self.fromVersion = fromVersion
        self.toVersion = toVersion
        self.unknownToTarget = unknownToTarget
        self.onlyInTarget = onlyInTarget
    }

    /// A migration's identity: its file name up to the first dot, so `0003_add_index.up.sql` and
    /// `0003_add_index.down.sql` are one migration and `20240101_users.rb` is `20240101_users`.
    public static func migrationID(_ fileName: String) -> String {
        let id =
            fileName.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
            ?? fileName
        return id.isEmpty ? fileName : id
    }

    /// Compares the migration file names of two releases.
    public static func compare(fromVersion: String, current: [String], toVersion: String, target: [String])
        -> MigrationCheck
    {
        let cur = Set(current.map(migrationID))
        let tgt = Set(target.map(migrationID))
        return MigrationCheck(
            fromVersion: fromVersion, toVersion: toVersion,
            unknownToTarget: cur.subtracting(tgt).sorted(), onlyInTarget: tgt.subtracting(cur).sorted())
    }

    /// True when rolling back would leave the database ahead of the code.
    public var targetLacksMigrations: Bool { !unknownToTarget.isEmpty }

    /// The automation level allowed after this check: `full` becomes `semi` when the target lacks migrations and
    /// they are not declared compatible. Lower levels are unchanged.
    public func allowedAutomation(_ requested: AutomationLevel, compatible: Bool) -> AutomationLevel {
        guard targetLacksMigrations, !compatible else { return requested }
        return min(requested, .semi)
    }

    /// The gate result for the incident report and the `gate_blocked` event (gate name `database`).
    public func gate(compatible: Bool) -> GateResult {
        guard targetLacksMigrations else {
            return GateResult(
                gate: "database", passed: true,
                detail: "\(toVersion) knows every migration of \(fromVersion)")
        }
        let list = Self.shortList(unknownToTarget)
        if compatible {
            return GateResult(
                gate: "database", passed: true,
                detail:
                    "\(toVersion) lacks \(unknownToTarget.count) migration(s) of \(fromVersion) (\(list)); declared compatible by migrationsCompatible"
            )
        }
        return GateResult(
            gate: "database", passed: false,
            detail:
                "\(toVersion) lacks \(unknownToTarget.count) migration(s) of \(fromVersion) (\(list)); automatic rollback demoted to semi: a human decides about the database (rollbackd never runs down-migrations)"
        )
    }

    static func shortList(_ names: [String], limit: Int = 5) -> String {
        names.count <= limit
            ? names.joined(separator: ", ")
            : names.prefix(limit).joined(separator: ", ") + " and \(names.count - limit) more"
    }
}
