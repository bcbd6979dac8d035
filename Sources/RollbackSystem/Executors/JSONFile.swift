import RollbackCore

extension JSONValue {
    /// Parses bytes as JSON, naming the file on error.
    static func parseFile(_ path: String, strategy: String, limit: Int = 16 << 20) throws(ExecutorError) -> JSONValue {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path: path, limit: limit) } catch {
            throw ExecutorError(strategy, error.description)
        }
        do { return try JSONParser.parse(bytes: bytes) } catch {
            throw ExecutorError(strategy, "\(path): invalid JSON at \(error)")
        }
    }
}
