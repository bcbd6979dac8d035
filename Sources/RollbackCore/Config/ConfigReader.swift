/// One problem found in a configuration: where (a JSON path such as `triggers[1].automation`) and what.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var message: String
    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }
    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// A configuration that cannot be used, with every problem found, each naming the file and JSON path.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var issues: [ConfigIssue]
    public init(file: String, issues: [ConfigIssue]) {
        self.file = file
        self.issues = issues
    }
    /// One line per issue: `thresholds.json: triggers[1].automation: "fulll" is not one of full, semi, manual, off`.
    public var lines: [String] { issues.map { "\(file): \($0)" } }
    public var description: String { lines.joined(separator: "\n") }
}

/// Collects errors and warnings while a configuration is read, so one pass reports all of them.
final class IssueSink {
    var errors: [ConfigIssue] = []
    var warnings: [ConfigIssue] = []
    func error(_ path: String, _ message: String) { errors.append(ConfigIssue(path: path, message: message)) }
    func warn(_ path: String, _ message: String) { warnings.append(ConfigIssue(path: path, message: message)) }
}

/// JSON path helpers: `a.b`, `a["odd key"]`, `a[3]`.
enum JSONPath {
    static func member(_ base: String, _ key: String) -> String {
        let simple =
            !key.isEmpty && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
            && !(key.first?.isNumber ?? true)
        if simple { return base.isEmpty ? key : "\(base).\(key)" }
        return "\(base)[\(JSONValue.quote(key))]"
    }
    static func element(_ base: String, _ i: Int) -> String { "\(base)[\(i)]" }
}

/// Reads one JSON object, remembering which keys were consumed so that every unknown key is reported.
struct ObjectReader {
    let path: String
    let members: [(key: String, value: JSONValue)]
    let sink: IssueSink
    private(set) var consumed: Set<String> = []

    /// nil (with an error recorded) when `value` is not an object.
    init?(_ value: JSONValue, path: String, sink: IssueSink) {
        guard case let .object(members) = value else {
            sink.error(path, "expected an object, found \(value.typeName)")
            return nil
        }
        self.path = path
        self.members = members
        self.sink = sink
    }

    func has(_ key: String) -> Bool { members.contains { $0.key == key } }

    func childPath(_ key: String) -> String { JSONPath.member(path, key) }

    /// The raw value of `key`, marking it as known. Reports a missing required key.
    mutating func value(_ key: String, required: Bool = false) -> JSONValue? {
        consumed.insert(key)
        guard let v = members.first(where: { $0.key == key })?.value else {
            if required { sink.error(childPath(key), "is required") }
            return nil
        }
        return v
    }

    /// Reads `key` with `read`; nil when absent or invalid (the reader records why).
    mutating func read<T>(_ key: String, required: Bool = false, _ read: (JSONValue, String, IssueSink) -> T?) -> T? {
        guard let v = value(key, required: required) else { return nil }
        return read(v, childPath(key), sink)
    }

    /// Reports every key that no reader asked for, with a suggestion when one is close to a known key.
    func finish(known extra: [String] = []) {
        let known = consumed.union(extra)
        for member in members where !known.contains(member.key) {
            var message = "unknown key"
            if let guess = Self.closest(to: member.key, in: known) {
                message += " (did you mean \"\(guess)\"?)"
            } else if !known.isEmpty {
                message += "; expected one of \(known.sorted().joined(separator: ", "))"
            }
            sink.error(childPath(member.key), message)
        }
    }

    static func closest(to word: String, in candidates: Set<String>) -> String? {
        // Sorted, so that ties always suggest the same key (Set order differs from run to run).
        var best: (key: String, distance: Int)?
        for c in candidates.sorted() {
            let d = editDistance(word.lowercased(), c.lowercased())
            guard d <= max(1, min(3, c.count / 3)) else { continue }
            if let b = best, b.distance <= d { continue }
            best = (c, d)
        }
        return best?.key
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = Array(repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}

/// Value readers: each returns nil after recording an error that names the path and what was expected.
enum Read {
    static func string(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> String? {
        guard case let .string(s) = v else {
            sink.error(path, "expected a string, found \(v.typeName)")
            return nil
        }
        return s
    }

    static func nonEmptyString(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> String? {
        guard let s = string(v, path, sink) else { return nil }
        guard !s.trimmingSpaces.isEmpty else {
            sink.error(path, "must not be empty")
            return nil
        }
        return s
    }

    static func bool(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> Bool? {
        guard case let .bool(b) = v else {
            sink.error(path, "expected true or false, found \(v.typeName)")
            return nil
        }
        return b
    }

    static func number(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> Double? {
        guard case let .number(n) = v else {
            sink.error(path, "expected a number, found \(v.typeName)")
            return nil
        }
        return n
    }

    static func ratio(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> Double? {
        guard let n = number(v, path, sink) else { return nil }
        guard n >= 0, n <= 1 else {
            sink.error(path, "\(JSONValue.format(number: n)) is not a ratio between 0 and 1 (write 10% as 0.1)")
            return nil
        }
        return n
    }

    static func positiveNumber(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> Double? {
        guard let n = number(v, path, sink) else { return nil }
        guard n > 0 else {
            sink.error(path, "must be greater than 0, found \(JSONValue.format(number: n))")
            return nil
        }
        return n
    }

    static func int(min lo: Int, max hi: Int) -> (JSONValue, String, IssueSink) -> Int? {
        return { v, path, sink in
            guard case let .number(n) = v else {
                sink.error(path, "expected a whole number from \(lo) to \(hi), found \(v.typeName)")
                return nil
            }
            guard n == n.rounded(), n >= Double(lo), n <= Double(hi) else {
                sink.error(path, "expected a whole number from \(lo) to \(hi), found \(JSONValue.format(number: n))")
                return nil
            }
            return Int(n)
        }
    }

    static func duration(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> Interval? {
        guard case let .string(s) = v else {
            sink.error(path, "expected a duration string such as \"5s\", \"2m\" or \"1h\", found \(v.typeName)")
            return nil
        }
        guard let d = Interval(parsing: s) else {
            sink.error(
                path, "\(JSONValue.quote(s)) is not a duration; write e.g. \"500ms\", \"5s\", \"2m\", \"1h\", \"1d\"")
            return nil
        }
        return d
    }

    static func positiveDuration(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> Interval? {
        guard let d = duration(v, path, sink) else { return nil }
        guard d.milliseconds > 0 else {
            sink.error(path, "must be longer than 0s")
            return nil
        }
        return d
    }

    static func choice<E: RawRepresentable & CaseIterable>(_: E.Type) -> (JSONValue, String, IssueSink) -> E?
    where E.RawValue == String {
        return { v, path, sink in
            let options = E.allCases.map(\.rawValue).joined(separator: ", ")
            guard case let .string(s) = v else {
                sink.error(path, "expected one of \(options), found \(v.typeName)")
                return nil
            }
            guard let e = E(rawValue: s) else {
                sink.error(path, "\(JSONValue.quote(s)) is not one of \(options)")
                return nil
            }
            return e
        }
    }

    static func stringArray(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> [String]? {
        guard case let .array(items) = v else {
            sink.error(path, "expected an array of strings, found \(v.typeName)")
            return nil
        }
        var out: [String] = []
        var ok = true
        for (i, item) in items.enumerated() {
            if let s = string(item, JSONPath.element(path, i), sink) { out.append(s) } else { ok = false }
        }
        return ok ? out : nil
    }

    /// A command as an argv array (never a shell string): non-empty, first element non-empty.
    static func argv(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> [String]? {
        if case .string = v {
            sink.error(
                path,
                "expected an argv array such as [\"/usr/bin/systemctl\", \"reload\", \"app\"], found a string (commands never run through a shell)"
            )
            return nil
        }
        guard let items = stringArray(v, path, sink) else { return nil }
        guard let first = items.first, !first.isEmpty else {
            sink.error(path, "must name a program: a non-empty array whose first element is the executable")
            return nil
        }
        return items
    }

    /// An absolute `http://` or `https://` URL with a host.
    static func httpURL(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> String? {
        guard let s = string(v, path, sink) else { return nil }
        guard URLParts(s) != nil else {
            sink.error(path, "\(JSONValue.quote(s)) is not an absolute http:// or https:// URL")
            return nil
        }
        return s
    }

    static func absolutePath(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> String? {
        guard let s = string(v, path, sink) else { return nil }
        guard s.hasPrefix("/") else {
            sink.error(path, "\(JSONValue.quote(s)) is not an absolute path")
            return nil
        }
        return s
    }

    /// A regular expression (as Prometheus label matchers use: RE2-like, fully anchored when matched).
    static func regex(_ v: JSONValue, _ path: String, _ sink: IssueSink) -> String? {
        guard let s = string(v, path, sink) else { return nil }
        do {
            _ = try Regex(s)
        } catch {
            sink.error(path, "\(JSONValue.quote(s)) is not a valid regular expression")
            return nil
        }
        return s
    }
}

/// Minimal URL splitting for validation and messages (Core has no Foundation URL).
public struct URLParts: Sendable, Equatable {
    public var scheme: String
    public var host: String
    public var port: Int?
    public var pathAndQuery: String

    public init?(_ text: String) {
        let lower = text.lowercased()
        let scheme: String
        if lower.hasPrefix("http://") {
            scheme = "http"
        } else if lower.hasPrefix("https://") {
            scheme = "https"
        } else {
            return nil
        }
        let rest = text.dropFirst(scheme.count + 3)
        guard !rest.contains(where: { $0 == " " || $0 == "\n" || $0 == "\t" }) else { return nil }
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        var authority = rest[..<authorityEnd]
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        var host = Substring(authority)
        var port: Int?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.startIndex...close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { return nil }
                port = p
            } else if !after.isEmpty {
                return nil
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
        }
        guard !host.isEmpty else { return nil }
        self.scheme = scheme
        self.host = String(host)
        self.port = port
        let pq = rest[authorityEnd...]
        self.pathAndQuery = pq.isEmpty ? "/" : String(pq)
    }
}

extension String {
    var trimmingSpaces: Substring {
        let s = self.drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        var end = s.endIndex
        while end > s.startIndex {
            let before = s.index(before: end)
            let c = s[before]
            if c == " " || c == "\t" || c == "\n" || c == "\r" { end = before } else { break }
        }
        return s[s.startIndex..<end]
    }
}
