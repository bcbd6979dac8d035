import RollbackCore

/// How a version answer is read: the first line of a body (a `file` or a plain `url`), or a JSON field of it
/// (`jsonField`, a dot path). Apart from `VersionReader` so that it depends on RollbackCore and two small helpers only
/// (`httpTrim`, `Reasons`, `JSONValue.lookup`), which the fuzz target `version` compiles with it
/// (Tests/Fuzz/Targets/version.swift).
enum VersionBody {
    static func firstLine(_ bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes, as: UTF8.self)
        let line = httpTrim(
            String(text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: true).first ?? ""))
        return line.isEmpty ? nil : line
    }

    static func extract(_ body: [UInt8], jsonField: String?, url: String) -> (version: String?, reason: String?) {
        guard let field = jsonField else {
            return firstLine(body).map { ($0, nil) } ?? (nil, "the version body of \(url) is empty")
        }
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes: body)
        } catch {
            return (nil, "the version body of \(url) is not JSON (\(error)): \(Reasons.excerpt(body))")
        }
        guard let value = json.lookup(dotPath: field) else {
            return (nil, "the version body of \(url) has no field \(field)")
        }
        guard let text = value.plainText, !text.isEmpty else {
            return (nil, "field \(field) of \(url) is \(value.serialized), not a version string")
        }
        return (text, nil)
    }
}
