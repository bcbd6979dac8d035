/// `fleet`: one decision for a service that runs on many hosts, coordinated through etcd. Without this section
/// rollbackd guards the service on this host alone, as before.
public struct FleetConfig: Sendable, Equatable {
    /// etcd client URLs (`http://10.0.0.1:2379`, `https://…`); a request moves to the next when one does not answer.
    public var endpoints: [String]
    public var tls: FleetTLS?
    /// The fleet's name: the etcd keys live under `/rollbackd/fleets/<name>/`. Default: the service's name.
    public var name: String
    /// This host's name in the fleet; nil: the machine's hostname (the daemon reads it).
    public var host: String?
    /// The lease that keeps this host's evidence and leadership alive: gone this long after the host stops.
    public var leaseTTL: Interval

    public init(endpoints: [String], tls: FleetTLS? = nil, name: String, host: String? = nil, leaseTTL: Interval) {
        self.endpoints = endpoints
        self.tls = tls
        self.name = name
        self.host = host
        self.leaseTTL = leaseTTL
    }

    public static let defaultLeaseTTL = Interval.seconds(10)
}

/// Files for TLS to etcd: the CA that signed the members' certificates, and this host's client certificate and key
/// (for members started with `--client-cert-auth`).
public struct FleetTLS: Sendable, Equatable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }
}

extension FleetConfig {
    /// A fleet or host name becomes one segment of an etcd key: letters, digits, `.`, `_`, `-`.
    static func isKeySegment(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 128
            && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") }
    }

    static func read(_ value: JSONValue, path: String, service: String?, interval: Interval?, sink: IssueSink)
        -> FleetConfig?
    {
        guard var obj = ObjectReader(value, path: path, sink: sink) else { return nil }
        let endpoints = obj.read("endpoints", required: true) { v, p, s -> [String]? in
            guard let list = Read.stringArray(v, p, s) else { return nil }
            if list.isEmpty { s.error(p, "must name at least one etcd endpoint") }
            var ok = true
            for (i, u) in list.enumerated() where URLParts(u) == nil {
                s.error(JSONPath.element(p, i), "\(JSONValue.quote(u)) is not an absolute http:// or https:// URL")
                ok = false
            }
            return ok && !list.isEmpty ? list : nil
        }
        let tls = obj.read("tls") { v, p, s -> FleetTLS? in
            guard var t = ObjectReader(v, path: p, sink: s) else { return nil }
            let ca = t.read("caFile", Read.absolutePath)
            let cert = t.read("certFile", Read.absolutePath)
            let key = t.read("keyFile", Read.absolutePath)
            t.finish()
            if (cert == nil) != (key == nil) {
                s.error(p, "certFile and keyFile go together: a client certificate needs its key")
            }
            return FleetTLS(caFile: ca, certFile: cert, keyFile: key)
        }
        let segment: (JSONValue, String, IssueSink) -> String? = { v, p, s in
            guard let text = Read.nonEmptyString(v, p, s) else { return nil }
            guard isKeySegment(text) else {
                s.error(
                    p,
                    "\(JSONValue.quote(text)) may hold only letters, digits, '.', '_' and '-' (it is part of an etcd key)"
                )
                return nil
            }
            return text
        }
        let name = obj.read("name", segment)
        let host = obj.read("host", segment)
        let ttl = obj.read("leaseTTL", Read.positiveDuration) ?? defaultLeaseTTL
        obj.finish()
        if ttl.milliseconds % 1000 != 0 || ttl < .seconds(2) {
            sink.error(
                obj.childPath("leaseTTL"),
                "\(ttl) is not a whole number of seconds of at least 2s (etcd leases count whole seconds)")
        } else if let interval, ttl < interval * 2 {
            sink.warn(
                obj.childPath("leaseTTL"),
                "\(ttl) is shorter than two intervals (\(interval * 2)): one slow tick lets this host's lease expire, and the fleet sees it leave"
            )
        }
        guard let endpoints else { return nil }
        let fleetName = name ?? service.flatMap { isKeySegment($0) ? $0 : nil }
        guard let fleetName else {
            if !obj.has("name") {
                sink.error(obj.childPath("name"), "is required: the service name cannot be part of an etcd key")
            }
            return nil
        }
        return FleetConfig(endpoints: endpoints, tls: tls, name: fleetName, host: host, leaseTTL: ttl)
    }
}
