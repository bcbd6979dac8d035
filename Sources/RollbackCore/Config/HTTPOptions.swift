/// Settings shared by every source that speaks HTTP.
public struct HTTPOptions: Sendable, Equatable {
    /// Whole-transfer timeout.
    public var timeout: Interval = .seconds(2)
    /// TCP + TLS connect timeout.
    public var connectTimeout: Interval = .seconds(1)
    /// CA bundle for TLS verification (verification is always on; this only chooses the trust store).
    public var caFile: String?
    /// Client certificate (PEM) and its key for mutual TLS (CURLOPT_SSLCERT / CURLOPT_SSLKEY); not read from
    /// `thresholds.json` here: the etcd client sets them from its own TLS settings.
    public var clientCertFile: String?
    public var clientKeyFile: String?
    /// A file whose content (trimmed) is sent as `Authorization: Bearer …`. Never logged.
    public var bearerTokenFile: String?
    /// Follow redirects (off by default: a health URL that redirects is usually a misconfiguration).
    public var followRedirects: Bool = false
    /// Responses larger than this are cut off and treated as no-data.
    public var maxBodyBytes: Int = 16 * 1024 * 1024

    public init() {}

    static let keys = ["timeout", "connectTimeout", "caFile", "bearerTokenFile", "followRedirects", "maxBodyBytes"]

    static func read(from obj: inout ObjectReader, defaultTimeout: Interval = .seconds(2)) -> HTTPOptions {
        var o = HTTPOptions()
        o.timeout = defaultTimeout
        if let v = obj.read("timeout", Read.positiveDuration) { o.timeout = v }
        if let v = obj.read("connectTimeout", Read.positiveDuration) { o.connectTimeout = v }
        o.caFile = obj.read("caFile", Read.absolutePath)
        o.bearerTokenFile = obj.read("bearerTokenFile", Read.absolutePath)
        if let v = obj.read("followRedirects", Read.bool) { o.followRedirects = v }
        if let v = obj.read("maxBodyBytes", Read.int(min: 1024, max: 1 << 30)) { o.maxBodyBytes = v }
        if o.connectTimeout > o.timeout {
            obj.sink.warn(obj.childPath("connectTimeout"), "is longer than timeout \(o.timeout); the timeout wins")
        }
        return o
    }
}
