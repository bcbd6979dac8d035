import RollbackCore
#if canImport(Glibc)
import Glibc
#endif

/// Reading thresholds.json from disk.
public enum ConfigFile {
    public static let defaultPath = "/etc/rollbackd/thresholds.json"

    public enum LoadError: Error, CustomStringConvertible {
        case unreadable(path: String, reason: String)
        case invalid(ConfigError)
        public var description: String {
            switch self {
            case let .unreadable(path, reason): return "\(path): cannot read: \(reason)"
            case let .invalid(e): return e.description
            }
        }
    }

    public static func load(path: String) -> Result<LoadedThresholds, LoadError> {
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readAll(path: path, limit: 4 << 20)
        } catch {
            return .failure(.unreadable(path: path, reason: error.description))
        }
        do {
            return .success(try Thresholds.load(bytes: bytes, file: path))
        } catch {
            return .failure(.invalid(error))
        }
    }
}
