import CCrypto
import FoundationEssentials
import RollbackCore

/// A webhook secret that cannot be used, naming the file (never its content).
public struct WebhookSecretError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "webhook secret file \(path): \(reason)" }
}

/// The Standard Webhooks secret of one webhook: `whsec_<base64>` (what Standard Webhooks libraries generate and
/// verify with), or, without that prefix, the file's bytes (trimmed) used as the key as they are.
public struct WebhookSecret: Sendable, Equatable {
    public var key: [UInt8]

    public init(key: [UInt8]) { self.key = key }

    public static func parse(_ text: String, path: String) throws(WebhookSecretError) -> WebhookSecret {
        let trimmed = httpTrim(text)
        if trimmed.isEmpty { throw WebhookSecretError(path: path, reason: "the file is empty") }
        if trimmed.contains("\n") { throw WebhookSecretError(path: path, reason: "the secret spans several lines") }
        if trimmed.hasPrefix("whsec_") {
            guard let key = base64(String(trimmed.dropFirst(6))), !key.isEmpty else {
                throw WebhookSecretError(path: path, reason: "whsec_ secret is not valid base64")
            }
            return WebhookSecret(key: key)
        }
        return WebhookSecret(key: Array(trimmed.utf8))
    }

    /// Standard base64 (FoundationEssentials); the padding may be left out, as some tools print secrets without it.
    static func base64(_ text: String) -> [UInt8]? {
        let padding = [0, 3, 2, 1][text.utf8.count % 4]
        guard padding < 3 else { return nil }
        return Data(base64Encoded: text + String(repeating: "=", count: padding)).map { Array($0) }
    }

    /// Reads the secret from its file. Read at every delivery batch, so a rotated secret is used at once.
    public static func load(path: String) throws(WebhookSecretError) -> WebhookSecret {
        do {
            let bytes = try FileIO.readAll(path: path, limit: 64 << 10)
            return try parse(String(decoding: bytes, as: UTF8.self), path: path)
        } catch let e as WebhookSecretError {
            throw e
        } catch {
            throw WebhookSecretError(path: path, reason: "\(error)")
        }
    }
}

/// Standard Webhooks signing (https://www.standardwebhooks.com): HMAC-SHA256 over `<id>.<timestamp>.<body>` with
/// the secret's key, sent as `webhook-signature: v1,<base64>` next to `webhook-id` and `webhook-timestamp`
/// (Unix seconds of the attempt).
public enum WebhookSigning {
    public static func signature(id: String, timestamp: Int64, body: [UInt8], secret: WebhookSecret) -> String {
        var message = Array(id.utf8)
        message.append(UInt8(ascii: "."))
        message.append(contentsOf: String(timestamp).utf8)
        message.append(UInt8(ascii: "."))
        message.append(contentsOf: body)
        return "v1," + Data(hmacSHA256(key: secret.key, message: message)).base64EncodedString()
    }

    /// The three Standard Webhooks headers plus the content type.
    public static func headers(
        id: String, timestamp: Int64, body: [UInt8],
        secret: WebhookSecret
    ) -> [(name: String, value: String)] {
        [
            ("Content-Type", "application/json"),
            ("webhook-id", id),
            ("webhook-timestamp", String(timestamp)),
            ("webhook-signature", signature(id: id, timestamp: timestamp, body: body, secret: secret)),
        ]
    }

    /// True when one of the space-separated `v1,` signatures matches (constant-time comparison).
    public static func verify(
        id: String, timestamp: Int64, body: [UInt8], signatureHeader: String,
        secret: WebhookSecret
    ) -> Bool {
        let expected = Array(signature(id: id, timestamp: timestamp, body: body, secret: secret).utf8)
        var matched = false
        for candidate in signatureHeader.split(separator: " ") {
            let bytes = Array(candidate.utf8)
            guard bytes.count == expected.count else { continue }
            var diff: UInt8 = 0
            for (a, b) in zip(bytes, expected) { diff |= a ^ b }
            if diff == 0 { matched = true }
        }
        return matched
    }

    /// `msg_` and 32 random hex digits: unique per notification, the same on every retry of it.
    public static func newMessageID() -> String {
        var rng = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var out = Array("msg_".utf8)
        for _ in 0..<2 {
            var n = rng.next() as UInt64
            for _ in 0..<16 {
                out.append(digits[Int(n & 15)])
                n >>= 4
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// HMAC-SHA256 (RFC 2104) by OpenSSL's libcrypto, which libcurl already maps into the process: no hand-made
/// cryptography, and no memory of its own. Checked against the RFC 4231 vectors and Python's hmac
/// (`HMACSHA256Tests`).
public func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
    var mac = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
    var length: UInt32 = 0
    // An empty key is a valid HMAC key; libcrypto wants a pointer all the same (a null key means "reuse the
    // previous one" to its lower layers), so it gets one to a byte it does not read.
    let keyBytes = key.isEmpty ? [0] : key
    let ok = keyBytes.withUnsafeBytes { k in
        message.withUnsafeBufferPointer { m in
            mac.withUnsafeMutableBufferPointer { out in
                HMAC(EVP_sha256(), k.baseAddress, Int32(key.count), m.baseAddress, m.count, out.baseAddress, &length)
                    != nil
            }
        }
    }
    // HMAC fails only when libcrypto cannot allocate; a webhook signed with garbage would be worse than a crash.
    precondition(ok && length == 32, "libcrypto HMAC-SHA256 failed")
    return Array(mac.prefix(Int(length)))
}
