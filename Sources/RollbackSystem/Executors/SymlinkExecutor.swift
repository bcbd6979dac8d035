#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// Capistrano-style releases: `releasesDir/<version>` and a `current` symlink. The swap makes a new symlink next to
/// `current` and renames it over `current` (rename(2) replaces it atomically: a reader resolving `current` sees the
/// old release or the new one, never nothing), then runs the optional reload argv.
public struct SymlinkExecutor: RollbackExecutor {
    public let config: SymlinkStrategy
    public let phaseTimeout: Interval
    public var strategyName: String { "symlink" }

    public init(_ config: SymlinkStrategy, phaseTimeout: Interval) {
        self.config = config
        self.phaseTimeout = phaseTimeout
    }

    func fail(_ message: String) -> ExecutorError { ExecutorError(strategyName, message) }

    public func currentVersion() async throws -> String {
        guard let target = Paths.readLink(config.currentLink) else {
            throw fail("\(config.currentLink) is not a symbolic link")
        }
        let trimmed = target.hasSuffix("/") ? String(target.dropLast()) : target
        guard let last = trimmed.split(separator: "/").last else {
            throw fail("\(config.currentLink) points at \(target)")
        }
        return String(last)
    }

    /// Release directories, newest version first.
    public func availableVersions() async throws -> [String] {
        let names: [String]
        do { names = try Paths.list(config.releasesDir) } catch { throw fail(error.description) }
        return VersionOrder.newestFirst(names.filter { Paths.isDirectory(config.releasePath($0)) })
    }

    public func precheck(target: String) async throws {
        guard Paths.isSafeComponent(target) else { throw fail("\(JSONValue.quote(target)) is not a release name") }
        let dir = config.releasePath(target)
        guard Paths.isDirectory(dir) else { throw fail("\(dir) is not a directory (no release \(target))") }
        guard access(dir, R_OK | X_OK) == 0 else { throw fail("\(dir) is not readable") }
        if Paths.exists(config.currentLink) && !Paths.isSymlink(config.currentLink) {
            throw fail("\(config.currentLink) exists and is not a symbolic link; it cannot be swapped")
        }
        guard access(FileIO.directory(of: config.currentLink), W_OK) == 0 else {
            throw fail("\(FileIO.directory(of: config.currentLink)) is not writable (the swap renames a link there)")
        }
    }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        var phases = [
            RollbackPhase(
                name: "swap",
                description: "point \(config.currentLink) at \(linkTarget(for: to)) (a new symlink renamed over it)",
                timeout: phaseTimeout)
        ]
        if let reload = config.reload {
            phases.append(
                RollbackPhase(
                    name: "reload", description: "run \(ProcessRunner.display(reload))", timeout: phaseTimeout))
        }
        return RollbackPlan(strategy: strategyName, from: from, to: to, incident: incident, phases: phases)
    }

    /// The link text: relative when the live link is relative and the releases live beside it, else absolute.
    func linkTarget(for version: String) -> String {
        let absolute = config.releasePath(version)
        if let existing = Paths.readLink(config.currentLink), !existing.hasPrefix("/") {
            let base = FileIO.directory(of: config.currentLink) + "/"
            if absolute.hasPrefix(base) { return String(absolute.dropFirst(base.count)) }
        }
        return absolute
    }

    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        switch phase.name {
        case "swap": try swap(to: plan.to)
        case "reload":
            guard let reload = config.reload else { return }
            _ = try await Command.run(
                reload, strategy: strategyName, environment: RollbackEnvironment.of(plan), timeout: phase.timeout)
        default:
            throw fail("unknown phase \(phase.name)")
        }
    }

    /// Idempotent: when `current` already points at the target, nothing is written.
    func swap(to version: String) throws(ExecutorError) {
        let text = linkTarget(for: version)
        if let existing = Paths.readLink(config.currentLink),
            existing == text || existing == config.releasePath(version)
        {
            return
        }
        guard Paths.isDirectory(config.releasePath(version)) else {
            throw fail("\(config.releasePath(version)) is not a directory (no release \(version))")
        }
        do {
            try FileIO.replaceSymlink(config.currentLink, target: text, temp: config.currentLink + ".rollbackd-new")
        } catch {
            throw fail(
                error.operation == "rename" ? "\(error.description) (the old link is unchanged)" : error.description)
        }
    }
}
