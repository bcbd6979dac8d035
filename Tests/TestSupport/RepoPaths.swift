#if canImport(Glibc)
import Glibc
#endif

/// Paths in the repository, found from this file's location.
public enum RepoPaths {
    public static var root: String {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3) // Tests/TestSupport/RepoPaths.swift
        return parts.joined(separator: "/")
    }

    /// The rollbackd binary the tests run: the debug build (`swift build` puts it there), or the one named by
    /// `ROLLBACKD_TEST_BINARY` (e.g. the static release build `make release` ships, `.build/release/rollbackd`).
    public static var binary: String {
        if let named = getenv("ROLLBACKD_TEST_BINARY").map({ String(cString: $0) }), !named.isEmpty {
            return named.hasPrefix("/") ? named : root + "/" + named
        }
        return root + "/.build/debug/rollbackd"
    }

    /// `rollbackd-demo-service`, built by the same `swift build` next to the rollbackd binary.
    public static var demoService: String {
        var parts = binary.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast()
        return parts.joined(separator: "/") + "/rollbackd-demo-service"
    }

    /// A helper program of the tests: `Tests/Servers/<name>`.
    public static func server(_ name: String) -> String { root + "/Tests/Servers/" + name }
}
