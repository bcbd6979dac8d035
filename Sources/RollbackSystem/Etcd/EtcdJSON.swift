import FoundationEssentials
import RollbackCore

/// The etcd v3 JSON gateway's encoding (grpc-gateway's protobuf JSON): keys and values in base64, int64 fields as
/// strings, fields at their default value (0, false, empty) left out of replies.
enum EtcdJSON {
    static func base64(_ bytes: [UInt8]) -> JSONValue { .string(Data(bytes).base64EncodedString()) }
    static func base64(_ text: String) -> JSONValue { base64(Array(text.utf8)) }
    static func int64(_ n: Int64) -> JSONValue { .string(String(n)) }

    /// The end of the range holding every key that starts with `prefix`: the prefix with its last byte plus one
    /// (trailing 0xff bytes dropped first); `\0` (every key) when nothing is left.
    static func rangeEnd(_ prefix: String) -> [UInt8] {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xff {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return [0]
    }

    /// `{"key": …}` or, for a prefix, `{"key": …, "range_end": …}`.
    static func keyRange(_ key: String, prefix: Bool) -> [(key: String, value: JSONValue)] {
        prefix ? [("key", base64(key)), ("range_end", base64(rangeEnd(key)))] : [("key", base64(key))]
    }

    static func compare(_ c: EtcdCompare) -> JSONValue {
        let (key, target, field, value): (String, String, String, JSONValue)
        switch c {
        case let .value(k, v): (key, target, field, value) = (k, "VALUE", "value", base64(v))
        case let .createRevision(k, r): (key, target, field, value) = (k, "CREATE", "create_revision", int64(r))
        case let .modRevision(k, r): (key, target, field, value) = (k, "MOD", "mod_revision", int64(r))
        case let .version(k, v): (key, target, field, value) = (k, "VERSION", "version", int64(v))
        case let .leaseOf(k, l): (key, target, field, value) = (k, "LEASE", "lease", int64(l))
        }
        return .object([
            ("key", base64(key)), ("result", .string("EQUAL")), ("target", .string(target)), (field, value),
        ])
    }

    static func put(_ key: String, _ value: [UInt8], lease: Int64?) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("key", base64(key)), ("value", base64(value))]
        if let lease, lease != 0 { members.append(("lease", int64(lease))) }
        return .object(members)
    }

    static func op(_ op: EtcdOp) -> JSONValue {
        switch op {
        case let .put(key, value, lease): return .object([("request_put", put(key, value, lease: lease))])
        case let .delete(key): return .object([("request_delete_range", .object(keyRange(key, prefix: false)))])
        case let .deletePrefix(p): return .object([("request_delete_range", .object(keyRange(p, prefix: true)))])
        case let .get(key): return .object([("request_range", .object(keyRange(key, prefix: false)))])
        case let .getPrefix(p): return .object([("request_range", .object(keyRange(p, prefix: true)))])
        }
    }
}

/// Reads one gateway reply, naming the field at fault. An absent field is its default (the gateway omits them).
struct EtcdReply {
    let value: JSONValue
    /// `path` of the reply inside the document, for messages (`responses[0].response_range`).
    let path: String

    init(_ value: JSONValue, path: String = "") {
        self.value = value
        self.path = path
    }

    private func at(_ field: String) -> String { path.isEmpty ? field : path + "." + field }

    func field(_ name: String) -> EtcdReply? {
        value[name].map { EtcdReply($0, path: at(name)) }
    }

    /// An int64 field: a string of digits (or a number); 0 when absent.
    func int64(_ name: String) throws(EtcdParseError) -> Int64 {
        switch value[name] {
        case nil, .null?: return 0
        case let .string(s)?:
            guard let n = Int64(s) else { throw EtcdParseError(at(name) + " is not an int64: \"\(s)\"") }
            return n
        case let .number(d)?:
            guard d == d.rounded(), abs(d) < 9.0e18 else { throw EtcdParseError(at(name) + " is not an integer") }
            return Int64(d)
        case let other?: throw EtcdParseError(at(name) + " is \(other.typeName), expected an int64 string")
        }
    }

    func bool(_ name: String) throws(EtcdParseError) -> Bool {
        switch value[name] {
        case nil, .null?: return false
        case let .bool(b)?: return b
        case let other?: throw EtcdParseError(at(name) + " is \(other.typeName), expected a boolean")
        }
    }

    func string(_ name: String) throws(EtcdParseError) -> String {
        switch value[name] {
        case nil, .null?: return ""
        case let .string(s)?: return s
        case let other?: throw EtcdParseError(at(name) + " is \(other.typeName), expected a string")
        }
    }

    /// A base64 field's bytes; empty when absent.
    func bytes(_ name: String) throws(EtcdParseError) -> [UInt8] {
        let text = try string(name)
        if text.isEmpty { return [] }
        guard let data = Data(base64Encoded: text) else { throw EtcdParseError(at(name) + " is not base64") }
        return Array(data)
    }

    /// An array field's elements; empty when absent.
    func array(_ name: String) throws(EtcdParseError) -> [EtcdReply] {
        switch value[name] {
        case nil, .null?: return []
        case let .array(items)?: return items.enumerated().map { EtcdReply($1, path: at(name) + "[\($0)]") }
        case let other?: throw EtcdParseError(at(name) + " is \(other.typeName), expected an array")
        }
    }

    func keyValue() throws(EtcdParseError) -> EtcdKeyValue {
        guard case .object = value else { throw EtcdParseError((path.isEmpty ? "kv" : path) + " is not an object") }
        return EtcdKeyValue(
            key: String(decoding: try bytes("key"), as: UTF8.self), value: try bytes("value"),
            createRevision: try int64("create_revision"), modRevision: try int64("mod_revision"),
            version: try int64("version"), lease: try int64("lease"))
    }

    func keyValues() throws(EtcdParseError) -> [EtcdKeyValue] {
        var out: [EtcdKeyValue] = []
        for kv in try array("kvs") { out.append(try kv.keyValue()) }
        return out
    }

    /// `header.revision`.
    func revision() throws(EtcdParseError) -> Int64 {
        try field("header")?.int64("revision") ?? 0
    }
}

/// A reply field that is not what the gateway sends.
struct EtcdParseError: Error {
    var detail: String
    init(_ detail: String) { self.detail = detail }
}

/// Splits a stream of concatenated JSON objects (`{…}{…}` or one per line, as the gateway's streaming calls send
/// them) into whole objects, whatever the chunking. Strings are tracked, so a brace inside one does not count.
struct JSONObjectSplitter {
    private var buffer: [UInt8] = []
    private var scanned = 0
    private var depth = 0
    private var inString = false
    private var escaped = false
    private var start: Int?

    /// Adds a chunk and returns the objects it completed, as bytes.
    mutating func feed(_ chunk: [UInt8]) -> [[UInt8]] {
        buffer.append(contentsOf: chunk)
        var out: [[UInt8]] = []
        var consumed = 0
        var i = scanned
        while i < buffer.count {
            let b = buffer[i]
            if inString {
                if escaped {
                    escaped = false
                } else if b == UInt8(ascii: "\\") {
                    escaped = true
                } else if b == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if b == UInt8(ascii: "\"") {
                inString = true
            } else if b == UInt8(ascii: "{") {
                if depth == 0 { start = i }
                depth += 1
            } else if b == UInt8(ascii: "}"), depth > 0 {
                depth -= 1
                if depth == 0, let s = start {
                    out.append(Array(buffer[s...i]))
                    start = nil
                    consumed = i + 1
                }
            } else if depth == 0 {
                consumed = i + 1 // whitespace or stray bytes between objects
            }
            i += 1
        }
        buffer.removeFirst(consumed)
        scanned = buffer.count
        if let s = start { start = s - consumed }
        return out
    }

    /// Bytes received but not yet part of a whole object (shown when a stream ends in the middle of one).
    var pending: Int { buffer.count }
}
