#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// Turns a feature flag off: by rewriting a flags JSON file atomically, or through an HTTP call.
///
/// The flags file is a JSON object; the flag is a top-level key whose value is `true`/`false`, or an object with a
/// boolean `enabled`. Every other key and value is kept as it was (in order); the file is rewritten only when the
/// flag is on.
public struct FeatureFlagExecutor: RollbackExecutor {
    public let config: FeatureFlagStrategy
    public let phaseTimeout: Interval
    public var strategyName: String { "feature-flag" }

    public init(_ config: FeatureFlagStrategy, phaseTimeout: Interval) {
        self.config = config
        self.phaseTimeout = phaseTimeout
    }

    func fail(_ message: String) -> ExecutorError { ExecutorError(strategyName, message) }

    public func currentVersion() async throws -> String { throw ExecutorError.versionUnknown(strategyName) }
    public func availableVersions() async throws -> [String] { [] }

    /// Where the flag's switch is in the file.
    enum FlagShape: Equatable {
        case bool(Bool)
        case enabled(Bool)
    }

    func shape(in root: JSONValue, file: String) throws(ExecutorError) -> FlagShape {
        guard case .object = root else {
            throw fail("\(file): expected a JSON object of flags, found \(root.typeName)")
        }
        guard let value = root[config.flag] else {
            throw fail("\(file): no flag \(JSONValue.quote(config.flag)) (a top-level key)")
        }
        switch value {
        case let .bool(b): return .bool(b)
        case .object:
            guard case let .bool(b)? = value["enabled"] else {
                throw fail("\(file): \(JSONValue.quote(config.flag)).enabled: expected true or false")
            }
            return .enabled(b)
        default:
            throw fail(
                "\(file): \(JSONValue.quote(config.flag)): expected true, false or an object with \"enabled\", found \(value.typeName)"
            )
        }
    }

    /// Whether the flag is on now (file variant).
    public func isOn() throws -> Bool {
        guard let file = config.file else { throw fail("no flags file configured") }
        switch try shape(in: try JSONValue.parseFile(file, strategy: strategyName), file: file) {
        case let .bool(b), let .enabled(b): return b
        }
    }

    public func precheck(target: String) async throws {
        if let file = config.file {
            _ = try isOn()
            guard access(FileIO.directory(of: file), W_OK) == 0 else {
                throw fail("\(FileIO.directory(of: file)) is not writable (the flags file is replaced by a rename)")
            }
        }
        if let http = config.http {
            try FeatureFlagHTTPCall.precheck(http, strategy: strategyName)
        }
    }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        let what: String
        if let file = config.file {
            what = "set \(JSONValue.quote(config.flag)) to false in \(file) (rewritten atomically; other flags kept)"
        } else if let http = config.http {
            what = FeatureFlagHTTPCall.describe(http)
        } else {
            what = "nothing configured"
        }
        return RollbackPlan(
            strategy: strategyName, from: from, to: to, incident: incident,
            phases: [
                RollbackPhase(name: "flag-off", description: what, timeout: phaseTimeout)
            ])
    }

    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        guard phase.name == "flag-off" else { throw fail("unknown phase \(phase.name)") }
        if let file = config.file {
            try turnOff(file: file)
        } else if let http = config.http {
            try await FeatureFlagHTTPCall.run(
                http, flag: config.flag, plan: plan, timeout: phase.timeout, strategy: strategyName)
        }
    }

    /// Idempotent: an already-off flag leaves the file untouched.
    func turnOff(file: String) throws(ExecutorError) {
        let root = try JSONValue.parseFile(file, strategy: strategyName)
        let current = try shape(in: root, file: file)
        guard case let .object(members) = root else { return }
        let updated: [(key: String, value: JSONValue)]
        switch current {
        case .bool(false), .enabled(false): return
        case .bool(true):
            updated = members.map { $0.key == config.flag ? (key: $0.key, value: JSONValue.bool(false)) : $0 }
        case .enabled(true):
            updated = members.map { m in
                guard m.key == config.flag, case let .object(inner) = m.value else { return m }
                return (
                    key: m.key,
                    value: .object(inner.map { $0.key == "enabled" ? (key: "enabled", value: .bool(false)) : $0 })
                )
            }
        }
        do {
            try FileIO.writeAtomically(
                path: file, bytes: Array((JSONValue.object(updated).serialized + "\n").utf8),
                mode: Paths.mode(file) ?? 0o644)
        } catch {
            throw fail("cannot rewrite \(file): \(error.description)")
        }
    }
}
