import RollbackCore

/// Reads the version of the release live now, from `thresholds.json`'s `version`:
/// - `url`: GET it; the trimmed body (first line) is the version, or a JSON field of it (`jsonField`, dot path);
/// - `file`: its first line;
/// - `strategy`: asked of the rollback strategy through `strategy` (the executors provide it).
public struct VersionReader: Sendable {
    public typealias StrategyHook = @Sendable () async throws -> String

    public let source: VersionSource
    private let client: HTTPClient
    private let strategy: StrategyHook?

    public init(source: VersionSource, client: HTTPClient = .shared, strategy: StrategyHook? = nil) {
        self.source = source
        self.client = client
        self.strategy = strategy
    }

    /// The version, or nil with a reason the operator can act on.
    public func read() async -> (version: String?, reason: String?) {
        switch source {
        case .strategy:
            guard let strategy else {
                return (nil, "the version comes from the rollback strategy, which is not available here")
            }
            do {
                let v = httpTrim(try await strategy())
                return v.isEmpty ? (nil, "the rollback strategy reported an empty version") : (v, nil)
            } catch {
                return (nil, "the rollback strategy cannot tell the version: \(error)")
            }
        case let .file(path):
            do {
                let bytes = try FileIO.readAll(path: path, limit: 64 << 10)
                return VersionBody.firstLine(bytes).map { ($0, nil) } ?? (nil, "version file \(path) is empty")
            } catch {
                return (nil, "cannot read version file: \(error.description)")
            }
        case let .url(url, jsonField, http):
            let r = await client.send(HTTPRequest(url: url, options: http))
            switch r {
            case let .failure(e): return (nil, "cannot read the version: \(e.description)")
            case let .success(resp):
                guard resp.isSuccess else {
                    return (nil, "cannot read the version: HTTP \(resp.status) from \(resp.url)")
                }
                return VersionBody.extract(resp.body, jsonField: jsonField, url: resp.url)
            }
        }
    }
}
