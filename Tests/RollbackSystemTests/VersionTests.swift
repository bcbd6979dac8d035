import Testing
import RollbackCore
import RollbackSystem
import RollbackVersion
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The version: `tools/version.sh` in each situation a build meets (tagged, untagged, dirty, no git, a tarball
/// inside some other checkout), `rollbackd --version`, and the journal entry the daemon writes when it starts.
/// (status, the webhook payload, incident reports and the User-Agent are checked where each is tested.)
@Suite struct VersionTests {
    static let changelog = """
        # Changelog

        ## [Unreleased]

        ### Added
        - something new

        ## [2.5.1] - 2027-01-02

        ## [2.5.0] - 2027-01-01

        """

    /// `sh tools/version.sh ARGS` run on the copy in `dir`; stdout trimmed, or the failure.
    static func version(_ dir: String, _ args: [String] = []) async throws -> ProcessResult {
        try await ProcessRunner.run(["sh", dir + "/tools/version.sh"] + args, timeout: .seconds(60))
    }

    /// A copy of the script and a changelog: what a tarball holds.
    static func tree(_ scratch: ScratchDir, _ name: String, changelog: String = changelog) throws -> String {
        let dir = scratch.mkdirs(name)
        scratch.write(name + "/CHANGELOG.md", changelog)
        try FileIO.makeDirectories(dir + "/tools")
        try FileIO.writeAtomically(
            path: dir + "/tools/version.sh", bytes: try FileIO.readAll(path: RepoPaths.root + "/tools/version.sh"),
            mode: 0o755)
        return dir
    }

    static func git(_ dir: String, _ args: String...) async throws {
        let argv = ["git", "-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.invalid"] + args
        let r = try await ProcessRunner.run(argv, timeout: .seconds(60))
        guard r.succeeded else { throw TestFailure("\(argv.joined(separator: " ")): \(r.stderrText)") }
    }

    @Test func versionFlagPrintsTheBuildsVersion() async throws {
        let r = try await runRollbackd(["--version"])
        #expect(r.succeeded, "\(r.stderrText)")
        #expect(r.stdoutText == RollbackVersion.current + "\n")
        // X.Y.Z, then what git describe adds: -N-gHASH, +git.HASH, .dirty/-dirty.
        #expect(
            RollbackVersion.current.wholeMatch(of: /[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?/) != nil,
            "\(RollbackVersion.current)")
    }

    @Test func withoutGitTheChangelogsNewestReleaseIsTheVersion() async throws {
        let scratch = try ScratchDir("version")
        defer { scratch.remove() }
        let dir = try Self.tree(scratch, "rollbackd-2.5.1")
        let r = try await Self.version(dir)
        #expect(r.succeeded && r.stdoutText == "2.5.1\n", "\(r.stdoutText) \(r.stderrText)")

        // A tarball unpacked inside some other git checkout is not described by that checkout's tags.
        try await Self.git(scratch.path, "init", "-q")
        try await Self.git(scratch.path, "commit", "-q", "--allow-empty", "-m", "outer")
        try await Self.git(scratch.path, "tag", "v9.9.9")
        let inside = try await Self.version(dir)
        #expect(inside.stdoutText == "2.5.1\n", "\(inside.stdoutText) \(inside.stderrText)")

        // No released section: a clear error naming the file.
        let bare = try Self.tree(scratch, "bare", changelog: "# Changelog\n\n## [Unreleased]\n")
        let e = try await Self.version(bare)
        #expect(e.termination == .exited(1))
        #expect(
            e.stderrText.contains("\(bare)/CHANGELOG.md has no released section"), "\(e.stderrText)")
    }

    @Test func inGitTheNewestTagIsDescribed() async throws {
        let scratch = try ScratchDir("version")
        defer { scratch.remove() }
        let dir = try Self.tree(scratch, "repo")
        try await Self.git(dir, "init", "-q")
        try await Self.git(dir, "add", ".")
        try await Self.git(dir, "commit", "-q", "-m", "first")
        let hash = try await ProcessRunner.run(
            ["git", "-C", dir, "rev-parse", "--short=12", "HEAD"], timeout: .seconds(60)
        ).stdoutText.trimmed

        // Not tagged yet: the changelog's version and the commit.
        #expect(try await Self.version(dir).stdoutText == "2.5.1+git.\(hash)\n")
        scratch.write("repo/CHANGELOG.md", Self.changelog + "- edited\n")
        #expect(try await Self.version(dir).stdoutText == "2.5.1+git.\(hash).dirty\n")
        try await Self.git(dir, "checkout", "-q", "CHANGELOG.md")

        // Tagged: the tag; a commit after it: git describe's count and hash.
        try await Self.git(dir, "tag", "-a", "v2.5.1", "-m", "rollbackd 2.5.1")
        #expect(try await Self.version(dir).stdoutText == "2.5.1\n")
        try await Self.git(dir, "commit", "-q", "--allow-empty", "-m", "second")
        let after = try await Self.version(dir).stdoutText
        #expect(after.wholeMatch(of: /2\.5\.1-1-g[0-9a-f]{12}\n/) != nil, "\(after)")

        // --swift writes the constant, and rewrites nothing when the version did not change.
        let out = dir + "/gen/RollbackVersion+Current.swift"
        #expect(try await Self.version(dir, ["--swift", out]).succeeded)
        let text = String(decoding: try FileIO.readAll(path: out), as: UTF8.self)
        #expect(text.contains("public static let current = \"\(after.trimmed)\"\n"), "\(text)")
        var before = stat()
        stat(out, &before)
        #expect(try await Self.version(dir, ["--swift", out]).succeeded)
        var again = stat()
        stat(out, &again)
        #expect(before.st_ino == again.st_ino && before.st_mtim.tv_nsec == again.st_mtim.tv_nsec)
    }

    /// A tarball (`git archive` of this commit: no .git) builds, and the version SwiftPM compiles in is the
    /// changelog's: the VersionStamp plugin and tools/version.sh outside git, through a real `swift build`.
    @Test(.timeLimit(.minutes(10)))
    func aTarballBuildsWithTheChangelogsVersion() async throws {
        let scratch = try ScratchDir("tarball")
        defer { scratch.remove() }
        let archive = try await ProcessRunner.run(
            [
                "sh", "-c", "git -C \"$1\" archive --prefix=rollbackd/ HEAD | tar -x -C \"$2\"", "sh", RepoPaths.root,
                scratch.path,
            ], timeout: .seconds(120))
        try #require(archive.succeeded, "git archive: \(archive.stderrText)")
        let tree = scratch.sub("rollbackd")
        let expected = try await Self.version(tree).stdoutText.trimmed
        #expect(expected.wholeMatch(of: /[0-9]+\.[0-9]+\.[0-9]+/) != nil, "\(expected)")
        let build = try await ProcessRunner.run(
            ["swift", "build", "--package-path", tree, "--target", "RollbackVersion"], timeout: .minutes(8))
        #expect(build.succeeded, "swift build in a tarball: \(build.stdoutText)\n\(build.stderrText)")
        let find = try await ProcessRunner.run(
            ["find", tree + "/.build", "-name", "RollbackVersion+Current.swift"], timeout: .seconds(60))
        let generated = try #require(find.stdoutText.split(separator: "\n").first.map(String.init))
        let text = String(decoding: try FileIO.readAll(path: generated), as: UTF8.self)
        #expect(text.contains("public static let current = \"\(expected)\"\n"), "\(text)")
    }

    /// The real daemon logging to a real journald: its start entry carries `ROLLBACKD_VERSION`.
    @Test func theDaemonsStartEntryCarriesTheVersion() async throws {
        try await Journald.ensure()
        let s = try DaemonTests.Scene()
        let service = uniqueIdentifier("rbversion")
        let config = "\(s.dir)/thresholds.json"
        let json = String(decoding: try FileIO.readAll(path: config), as: UTF8.self)
        try FileIO.writeAtomically(
            path: config, bytes: Array(json.replacing(#""service": "demo""#, with: #""service": "\#(service)""#).utf8),
            mode: 0o644)
        _ = try s.spawn(
            [
                RepoPaths.binary, "run", "--config", config, "--state-dir", "\(s.dir)/state",
                "--socket", "\(s.dir)/control.sock", "--log-target", "journal",
            ], log: "\(s.dir)/daemon.log")
        let entries = try await journalEntries(["ROLLBACKD_SERVICE=\(service)", "ROLLBACKD_EVENT=config_loaded"])
        let start = try #require(entries.first, "no config_loaded entry; daemon log: \(s.log)")
        #expect(start["ROLLBACKD_VERSION"] == RollbackVersion.current)
        #expect(start["MESSAGE"]?.hasPrefix("rollbackd started for \(service)") == true, "\(start)")
    }
}
