/// Paths in the repository, found from this file's location.
enum RepoPaths {
    static var root: String {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3) // Tests/RollbackSystemTests/RepoPaths.swift
        return parts.joined(separator: "/")
    }
    /// The debug build of the rollbackd binary (`swift build` puts it there).
    static var binary: String { root + "/.build/debug/rollbackd" }
}
