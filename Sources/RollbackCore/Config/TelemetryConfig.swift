/// Where the daemon serves its own metrics (`/metrics`, Prometheus text format). Off unless configured; only on a
/// loopback address or a Unix socket, so the watchdog's state is never exposed beyond the host.
public enum TelemetryListen: Sendable, Equatable, CustomStringConvertible {
    /// A loopback IPv4 (`127.0.0.0/8`) or IPv6 (`::1`) address and a port.
    case tcp(host: String, port: Int)
    /// An absolute path of a Unix socket.
    case unix(path: String)

    public var description: String {
        switch self {
        case let .tcp(host, port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case let .unix(path): path
        }
    }

    /// Parses `127.0.0.1:9465`, `[::1]:9465` or `/run/rollbackd/metrics.sock`; otherwise what is wrong, as a phrase
    /// that follows the quoted text.
    public static func parse(_ text: String) -> Result<TelemetryListen, ListenError> {
        if text.hasPrefix("/") {
            if text.utf8.count > 107 {
                return .failure(ListenError("is longer than 107 bytes, the limit of a Unix socket path"))
            }
            return .success(.unix(path: text))
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                return .failure(ListenError("is not [::1]:PORT"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(ListenError("is not HOST:PORT (127.0.0.1:9465) or an absolute Unix socket path"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = Int(portText), (1...65535).contains(port), portText.allSatisfy({ $0.isASCII && $0.isNumber }),
            portText.first != "0"
        else {
            return .failure(ListenError("has no port (1…65535) after the address"))
        }
        guard isLoopback(String(host)) else {
            return .failure(
                ListenError(
                    "is not on a loopback address (127.0.0.0/8 or ::1): /metrics shows the watchdog's state and is served to this host only"
                ))
        }
        return .success(.tcp(host: String(host), port: port))
    }

    /// `127.x.y.z` (four decimal octets) or `::1`.
    static func isLoopback(_ host: String) -> Bool {
        if host == "::1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "127" else { return false }
        return parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy { $0.isASCII && $0.isNumber } && Int(p)! <= 255
        }
    }

    public struct ListenError: Error, Sendable, Equatable {
        public var message: String
        init(_ message: String) { self.message = message }
    }
}

/// `telemetry`: the daemon's own `/metrics`.
public struct TelemetryConfig: Sendable, Equatable {
    public var listen: TelemetryListen

    public init(listen: TelemetryListen) { self.listen = listen }

    static func read(_ value: JSONValue, path: String, sink: IssueSink) -> TelemetryConfig? {
        guard var obj = ObjectReader(value, path: path, sink: sink) else { return nil }
        let listen = obj.read("listen", required: true) { v, p, s -> TelemetryListen? in
            guard let text = Read.nonEmptyString(v, p, s) else { return nil }
            switch TelemetryListen.parse(text) {
            case let .success(l): return l
            case let .failure(e):
                s.error(p, "\(JSONValue.quote(text)) \(e.message)")
                return nil
            }
        }
        obj.finish()
        return listen.map { TelemetryConfig(listen: $0) }
    }
}
