import RollbackCore
import RollbackSystem
import TestSupport

/// The thresholds fixtures under `Tests/Fixtures`: `broken/` (one defect each, with `broken/expected.json`),
/// `valid/` (every strategy and every key) and `warnings/` (valid, with semantic warnings).
enum Fixtures {
    static var dir: String { RepoPaths.root + "/Tests/Fixtures" }
    static var brokenDir: String { dir + "/broken" }
    static var shipped: String { RepoPaths.root + "/thresholds.json" }
    static var schema: String { RepoPaths.root + "/thresholds.schema.json" }

    static func json(_ path: String) throws -> JSONValue {
        do {
            return try JSONParser.parse(try TestFiles.text(path))
        } catch let error as JSONSyntaxError {
            throw TestFailure("\(path): \(error)")
        }
    }

    /// The `.json` files of a directory (full paths, sorted), `expected.json` left out.
    static func jsonFiles(in directory: String) -> [String] {
        TestFiles.list(directory).filter { $0.hasSuffix(".json") && $0 != "expected.json" }.map { directory + "/" + $0 }
    }

    /// One broken file and what is expected of it.
    struct Broken: Sendable, CustomStringConvertible {
        var file: String
        /// A `file: path: message` fragment that `rollbackd check` must print on stderr.
        var error: String
        /// `reject` (the schema catches it too), `accept` (only the loader can: a semantic check) or `syntax`
        /// (not JSON at all).
        var schema: String
        var path: String { Fixtures.brokenDir + "/" + file }
        var description: String { file }
    }

    /// `broken/expected.json`, in file order. Empty when it cannot be read; `corpusIsComplete` fails then.
    static let broken: [Broken] = {
        guard case let .object(members)? = try? json(brokenDir + "/expected.json") else { return [] }
        return members.compactMap { member in
            guard case let .string(error)? = member.value["error"], case let .string(schema)? = member.value["schema"]
            else { return nil }
            return Broken(file: member.key, error: error, schema: schema)
        }
    }()
}

extension JSONValue {
    /// A copy with the value at `path` (dot-separated keys and array indices, e.g. `triggers.0.name`) replaced,
    /// added (a missing last key) or, for nil, removed.
    func setting(_ path: String, to new: JSONValue?) -> JSONValue {
        setting(path.split(separator: ".")[...], to: new)
    }

    private func setting(_ path: ArraySlice<Substring>, to new: JSONValue?) -> JSONValue {
        guard let head = path.first else { return new ?? .null }
        let rest = path.dropFirst()
        switch self {
        case var .object(members):
            let key = String(head)
            if let i = members.firstIndex(where: { $0.key == key }) {
                if rest.isEmpty, new == nil {
                    members.remove(at: i)
                } else {
                    members[i].value = members[i].value.setting(rest, to: new)
                }
            } else if rest.isEmpty, let new {
                members.append((key, new))
            }
            return .object(members)
        case var .array(items):
            guard let i = Int(head), items.indices.contains(i) else { return self }
            if rest.isEmpty, new == nil { items.remove(at: i) } else { items[i] = items[i].setting(rest, to: new) }
            return .array(items)
        default:
            return self
        }
    }
}
