import FoundationEssentials
import RollbackCore
import RollbackSystem

/// The engine's memory on disk: `<state dir>/state.json`, written temp + fsync + rename so a crash leaves the
/// old state or the new, never a torn file.
public struct StateStore: Sendable {
    public let directory: String
    public var path: String { directory + "/state.json" }

    public init(directory: String) {
        self.directory = directory
    }

    /// The saved state, or nil when there is none yet. A corrupt file is an error naming it (never silently reset:
    /// that would forget rolled-back-from releases and the budget).
    public func load() throws(StateStoreError) -> EngineState? {
        guard FileIO.exists(path) else { return nil }
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path: path) } catch {
            throw StateStoreError(path: path, reason: error.description)
        }
        do {
            return try JSONDecoder().decode(EngineState.self, from: Data(bytes))
        } catch {
            throw StateStoreError(
                path: path, reason: "not a rollbackd state file (\(error)); move it aside to start fresh")
        }
    }

    public func save(_ state: EngineState) throws(StateStoreError) {
        do {
            try FileIO.makeDirectories(directory, mode: 0o700)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let data = try encoder.encode(state)
            try FileIO.writeAtomically(path: path, bytes: Array(data), mode: 0o600)
        } catch let e as SystemError {
            throw StateStoreError(path: path, reason: e.description)
        } catch {
            throw StateStoreError(path: path, reason: "\(error)")
        }
    }
}

public struct StateStoreError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}
