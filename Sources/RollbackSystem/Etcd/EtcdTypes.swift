import RollbackCore

/// TLS for `https://` etcd endpoints: the `fleet.tls` files of the configuration (RollbackCore's `FleetTLS`: the
/// CA that signed the members' certificates, nil for the system's trust store, and for members started with
/// `--client-cert-auth` this client's certificate and key), one type for both.
public typealias EtcdTLS = FleetTLS

/// One key as etcd stores it. Revisions are etcd's (cluster-wide, increasing); `lease` is 0 when the key is bound
/// to none.
public struct EtcdKeyValue: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    public var createRevision: Int64
    public var modRevision: Int64
    public var version: Int64
    public var lease: Int64

    public init(
        key: String, value: [UInt8], createRevision: Int64 = 0, modRevision: Int64 = 0, version: Int64 = 0,
        lease: Int64 = 0
    ) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }

    /// The value as UTF-8 text (invalid bytes become U+FFFD).
    public var text: String { String(decoding: value, as: UTF8.self) }
}

/// One condition of a transaction; all must hold for its `success` operations to run.
public enum EtcdCompare: Sendable, Equatable {
    /// The key's value is exactly this text (false when the key is absent).
    case value(String, equals: String)
    /// The key's create revision; 0 means the key is absent (put-if-absent).
    case createRevision(String, equals: Int64)
    /// The key's last-modification revision (compare-and-swap on a value read earlier).
    case modRevision(String, equals: Int64)
    /// The key's version (number of puts since it was created; 0 when absent).
    case version(String, equals: Int64)
    /// The lease the key is bound to (0: none or absent).
    case leaseOf(String, equals: Int64)
}

/// One operation of a transaction.
public enum EtcdOp: Sendable, Equatable {
    case put(String, value: [UInt8], lease: Int64?)
    case delete(String)
    /// Deletes every key that starts with the prefix.
    case deletePrefix(String)
    case get(String)
    case getPrefix(String)

    /// A put of UTF-8 text.
    public static func put(_ key: String, _ text: String, lease: Int64? = nil) -> EtcdOp {
        .put(key, value: Array(text.utf8), lease: lease)
    }
}

/// What a transaction did: whether its compares held (so `success` ran, else `failure`), the store's revision
/// after it, and for each operation that ran the keys it read (empty for puts and deletes).
public struct EtcdTxnResult: Sendable, Equatable {
    public var succeeded: Bool
    public var revision: Int64
    public var ranges: [[EtcdKeyValue]]

    public init(succeeded: Bool, revision: Int64, ranges: [[EtcdKeyValue]]) {
        self.succeeded = succeeded
        self.revision = revision
        self.ranges = ranges
    }
}

/// One change seen by a watch. A delete's `kv` carries the key and the deletion's revision (`modRevision`) only.
public struct EtcdEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case put
        case delete
    }

    public var kind: Kind
    public var kv: EtcdKeyValue

    public init(kind: Kind, kv: EtcdKeyValue) {
        self.kind = kind
        self.kv = kv
    }
}

/// A failed etcd request. The message names the endpoint URL and the API path at fault.
public struct EtcdError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Why one endpoint could not be used.
    public struct EndpointFailure: Sendable, Equatable {
        public var endpoint: String
        public var reason: String
    }

    public enum Kind: Sendable, Equatable {
        /// No endpoint answered within the request's deadline: the last reason of each endpoint tried.
        case unreachable([EndpointFailure], deadline: Interval)
        /// etcd (through its gateway) refused the request: the HTTP status and the gateway's gRPC code and message.
        case status(Int, code: Int?, message: String)
        /// The lease is gone (expired or revoked): keys bound to it are deleted.
        case leaseExpired(Int64)
        /// The reply is not what the v3 gateway sends; names the field.
        case malformed(String)
        /// A watch's stream broke or ended (the member died, the connection dropped); the watch reconnects.
        case streamBroken(String)
        /// A watch asked for a revision etcd has compacted away: the caller must read the keys again and watch
        /// from the revision of that read.
        case compacted(compactRevision: Int64)
    }

    /// The endpoint (base URL) at fault; for `unreachable`, every endpoint tried, comma-separated.
    public var endpoint: String
    /// The API path, e.g. `/v3/kv/txn`.
    public var path: String
    public var kind: Kind

    public init(endpoint: String, path: String, kind: Kind) {
        self.endpoint = endpoint
        self.path = path
        self.kind = kind
    }

    public var description: String {
        switch kind {
        case let .unreachable(failures, deadline):
            let each = failures.map { "\($0.endpoint): \($0.reason)" }.joined(separator: "; ")
            return "etcd unreachable for \(path) within \(deadline) (every endpoint tried): \(each)"
        case let .status(status, code, message):
            let grpc = code.map { ", gRPC code \($0)" } ?? ""
            return "etcd \(endpoint)\(path) refused the request: HTTP \(status)\(grpc): \(message)"
        case let .leaseExpired(id):
            return "etcd \(endpoint)\(path): lease \(id) has expired or was revoked"
        case let .malformed(detail):
            return "etcd \(endpoint)\(path) sent a malformed reply: \(detail)"
        case let .streamBroken(reason):
            return
                "etcd \(endpoint)\(path): the watch stream broke (\(reason)); reconnecting from the last revision seen"
        case let .compacted(revision):
            return
                "etcd \(endpoint)\(path): the watched revision is compacted (oldest kept: \(revision)); read again and watch from there"
        }
    }
}
