#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// Restores config files from the target release — a directory of per-release copies
/// (`<directory>/<version>/<basename>`) or `git show <tag>:<path>` from a repository — then runs the validate argv
/// and the reload argv. When validation fails, the files are put back as they were before the restore, so the
/// running service and the files on disk agree again.
public struct ConfigExecutor: RollbackExecutor {
    public let config: ConfigStrategy
    public let phaseTimeout: Interval
    public let stateDirectory: String
    public var strategyName: String { "config" }
    /// How many tags `currentVersion` compares against the live files.
    static let maxTagsCompared = 50

    public init(_ config: ConfigStrategy, phaseTimeout: Interval, stateDirectory: String) {
        self.config = config
        self.phaseTimeout = phaseTimeout
        self.stateDirectory = stateDirectory
    }

    func fail(_ message: String) -> ExecutorError { ExecutorError(strategyName, message) }

    /// The release whose copies equal every live file (the newest such release).
    public func currentVersion() async throws -> String {
        var live: [[UInt8]] = []
        for f in config.files {
            do { live.append(try FileIO.readAll(path: f)) } catch { throw fail(error.description) }
        }
        let candidates = try await availableVersions()
        for v in candidates.prefix(config.gitRepo != nil ? Self.maxTagsCompared : candidates.count) {
            var same = true
            for (i, f) in config.files.enumerated() {
                guard let copy = try? await content(of: f, version: v, timeout: phaseTimeout), copy == live[i] else {
                    same = false
                    break
                }
            }
            if same { return v }
        }
        throw fail(
            "the live files (\(config.files.joined(separator: ", "))) match no release in \(config.directory ?? config.gitRepo ?? "?")"
        )
    }

    /// Release directories or git tags, newest first.
    public func availableVersions() async throws -> [String] {
        if let dir = config.directory {
            let names: [String]
            do { names = try Paths.list(dir) } catch { throw fail(error.description) }
            return VersionOrder.newestFirst(names.filter { Paths.isDirectory(dir + "/" + $0) })
        }
        if let repo = config.gitRepo {
            do { return try await GitTags.list(repo: repo, timeout: phaseTimeout) } catch { throw fail(error.message) }
        }
        return []
    }

    /// The target release's copy of a live file.
    func content(of file: String, version: String, timeout: Interval) async throws(ExecutorError) -> [UInt8] {
        if let copy = config.directoryCopy(of: file, version: version) {
            do { return try FileIO.readAll(path: copy) } catch { throw fail(error.description) }
        }
        guard let repo = config.gitRepo else { throw fail("neither directory nor gitRepo is set") }
        let argv = ["git", "-C", repo, "show", "\(version):\(config.gitPath(for: file))"]
        return try await Command.run(argv, strategy: strategyName, timeout: timeout, maxOutputBytes: 64 << 20).stdout
    }

    public func precheck(target: String) async throws {
        guard Paths.isSafeComponent(target) || config.gitRepo != nil, !target.isEmpty, !target.hasPrefix("-") else {
            throw fail("\(JSONValue.quote(target)) is not a release name")
        }
        for f in config.files {
            guard access(FileIO.directory(of: f), W_OK) == 0 else {
                throw fail("\(FileIO.directory(of: f)) is not writable (restoring \(f) writes there)")
            }
            if let copy = config.directoryCopy(of: f, version: target) {
                guard access(copy, R_OK) == 0 else {
                    throw fail("\(copy) is missing or unreadable (release \(target) has no copy of \(f))")
                }
            } else if let repo = config.gitRepo {
                let argv = ["git", "-C", repo, "cat-file", "-e", "\(target):\(config.gitPath(for: f))"]
                let r = try await Command.output(argv, strategy: strategyName, timeout: phaseTimeout)
                guard r.succeeded else {
                    throw fail(
                        "\(ProcessRunner.display(argv)): tag \(target) has no \(config.gitPath(for: f)) (\(r.summary(timeout: phaseTimeout)))"
                    )
                }
            }
        }
    }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        let source = config.directory.map { "\($0)/\(to)/" } ?? "git show \(to):<path> in \(config.gitRepo ?? "?")"
        var phases = [
            RollbackPhase(
                name: "restore",
                description:
                    "restore \(config.files.joined(separator: ", ")) from \(source) (each written atomically; previous copies kept for a failed validation)",
                timeout: phaseTimeout)
        ]
        if let v = config.validate {
            phases.append(
                RollbackPhase(
                    name: "validate",
                    description: "run \(ProcessRunner.display(v)); on failure put the previous files back",
                    timeout: phaseTimeout))
        }
        if let r = config.reload {
            phases.append(
                RollbackPhase(name: "reload", description: "run \(ProcessRunner.display(r))", timeout: phaseTimeout))
        }
        return RollbackPlan(strategy: strategyName, from: from, to: to, incident: incident, phases: phases)
    }

    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        let env = RollbackEnvironment.of(plan)
        switch phase.name {
        case "restore":
            try await restore(plan, timeout: phase.timeout)
        case "validate":
            guard let argv = config.validate else { return }
            let r = try await Command.output(argv, strategy: strategyName, environment: env, timeout: phase.timeout)
            guard r.succeeded else {
                let why = "\(ProcessRunner.display(argv)): \(r.summary(timeout: phase.timeout))"
                let copies = SavedCopies(stateDirectory: stateDirectory, strategy: strategyName, plan: plan)
                let restored: [String]
                do { restored = try copies.restore(config.files, strategy: strategyName) } catch {
                    throw fail("\(why); and \(error.message)")
                }
                throw fail(
                    "\(why); put back the previous \(restored.isEmpty ? "files (none had changed)" : restored.joined(separator: ", "))"
                )
            }
        case "reload":
            guard let argv = config.reload else { return }
            _ = try await Command.run(argv, strategy: strategyName, environment: env, timeout: phase.timeout)
        default:
            throw fail("unknown phase \(phase.name)")
        }
    }

    /// Idempotent: files already equal to the target's copies are not written again.
    func restore(_ plan: RollbackPlan, timeout: Interval) async throws(ExecutorError) {
        let copies = SavedCopies(stateDirectory: stateDirectory, strategy: strategyName, plan: plan)
        // Read every copy first: a missing copy stops the phase before any file changed.
        var wanted: [[UInt8]] = []
        for f in config.files { wanted.append(try await content(of: f, version: plan.to, timeout: timeout)) }
        for (i, f) in config.files.enumerated() {
            if let live = try? FileIO.readAll(path: f), live == wanted[i] { continue }
            try copies.save(index: i, of: f, strategy: strategyName)
            do {
                try FileIO.writeAtomically(path: f, bytes: wanted[i], mode: Paths.mode(f) ?? 0o644)
            } catch {
                throw fail("cannot restore \(f): \(error.description)")
            }
        }
    }
}
