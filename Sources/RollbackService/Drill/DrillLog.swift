import FoundationEssentials
import RollbackCore
import RollbackSystem
#if canImport(Glibc)
import Glibc
#endif

/// The record of rollback drills: `<state dir>/drills.json` (`{"drills": [...]}`, newest last, at most 100),
/// written temp + fsync + rename.
public struct DrillLog: Sendable {
    public static let fileName = "drills.json"
    public static let keep = 100

    public let directory: String
    public var path: String { directory + "/" + Self.fileName }

    public init(stateDirectory: String) {
        self.directory = stateDirectory
    }

    private struct File: Codable {
        var drills: [DrillRecord]
    }

    /// The recorded drills (empty when there is no file yet). An unreadable file is an error naming it.
    public func load() throws(StateStoreError) -> [DrillRecord] {
        guard FileIO.exists(path) else {
            // Not there, or not ours to see (a 0700 state directory read by an operator): only the first is "none".
            if errno == EACCES { throw StateStoreError(path: path, reason: String(cString: strerror(EACCES))) }
            return []
        }
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path: path, limit: 4 << 20) } catch {
            throw StateStoreError(path: path, reason: error.description)
        }
        do {
            return try JSONDecoder().decode(File.self, from: Data(bytes)).drills
        } catch {
            throw StateStoreError(path: path, reason: "not a rollbackd drill log (\(error))")
        }
    }

    public func append(_ record: DrillRecord) throws(StateStoreError) {
        var drills = try load()
        drills.append(record)
        if drills.count > Self.keep { drills.removeFirst(drills.count - Self.keep) }
        do {
            try FileIO.makeDirectories(directory, mode: 0o700)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            let data = try encoder.encode(File(drills: drills))
            try FileIO.writeAtomically(path: path, bytes: Array(data) + [10], mode: 0o640)
        } catch let e as SystemError {
            throw StateStoreError(path: path, reason: e.description)
        } catch {
            throw StateStoreError(path: path, reason: "\(error)")
        }
    }

    /// The `check`/`status` warning for this state directory, or nil when a successful drill is recent.
    /// A log that cannot be read is a warning too (never silently "fine").
    public func warning(now: Timestamp) -> String? {
        do {
            return try DrillPolicy.warning(load(), now: now).map { "\(path): \($0)" }
        } catch {
            return "cannot tell when the rollback was last rehearsed: \(error)"
        }
    }
}

extension DrillRecord {
    /// The record as JSON for `rollbackd drill --json` (times RFC 3339).
    public var json: JSONValue {
        func num(_ v: Double?) -> JSONValue { v.map { .number(($0 * 1000).rounded() / 1000) } ?? .null }
        return .object([
            ("id", .string(id)), ("startedAt", .string(startedAt.iso8601)), ("finishedAt", .string(finishedAt.iso8601)),
            ("from", .string(from)), ("to", .string(to)), ("strategy", .string(strategy)),
            ("outcome", .string(outcome.rawValue)), ("recoverySeconds", num(recoverySeconds)),
            ("rollbackSeconds", num(rollbackSeconds)), ("rolledForward", .bool(rolledForward)),
            ("detail", .string(detail)),
        ])
    }
}
