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
            return try Self.decoder.decode(EngineState.self, from: Data(bytes))
        } catch {
            throw StateStoreError(
                path: path, reason: "not a rollbackd state file (\(error)); move it aside to start fresh")
        }
    }

    /// JSON has no infinity, but the state may hold one (a histogram's `+Inf` bucket, a bound above every bucket):
    /// written as the exposition format writes them, so a stray non-finite number never stops the state saving.
    static let nonFinite = JSONEncoder.NonConformingFloatEncodingStrategy.convertToString(
        positiveInfinity: "+Inf", negativeInfinity: "-Inf", nan: "NaN")

    /// Sorted keys, non-finite numbers as the exposition writes them: state.json, and fleet mode's records in etcd.
    static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = nonFinite
        return e
    }

    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "+Inf", negativeInfinity: "-Inf", nan: "NaN")
        return d
    }

    public func save(_ state: EngineState) throws(StateStoreError) {
        try Self.write(state, to: path, in: directory)
    }

    /// `value` as JSON at `path`, temp + fsync + rename.
    static func write(_ value: some Encodable, to path: String, in directory: String) throws(StateStoreError) {
        do {
            try FileIO.makeDirectories(directory, mode: 0o700)
            let data = try Self.encoder.encode(value)
            try FileIO.writeAtomically(path: path, bytes: Array(data), mode: 0o600)
        } catch let e as SystemError {
            throw StateStoreError(path: path, reason: e.description)
        } catch {
            throw StateStoreError(path: path, reason: "\(error)")
        }
    }

    /// The samples behind incident charts (`SampleHistory`): `<state dir>/samples.json`.
    public var samplesPath: String { directory + "/samples.json" }

    /// The saved samples; nil when there are none or the file is unreadable (a chart is not worth refusing to
    /// start over: the daemon says so and starts a new history).
    public func loadSamples() -> Result<SampleHistory?, StateStoreError> {
        guard FileIO.exists(samplesPath) else { return .success(nil) }
        do {
            let bytes = try FileIO.readAll(path: samplesPath)
            return .success(try Self.decoder.decode(SampleHistory.self, from: Data(bytes)))
        } catch {
            return .failure(StateStoreError(path: samplesPath, reason: "\(error)"))
        }
    }

    public func saveSamples(_ history: SampleHistory) throws(StateStoreError) {
        try Self.write(history, to: samplesPath, in: directory)
    }
}

public struct StateStoreError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}
