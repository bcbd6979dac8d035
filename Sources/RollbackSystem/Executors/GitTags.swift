import RollbackCore

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
