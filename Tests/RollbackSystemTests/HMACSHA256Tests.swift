import RollbackCore
@testable import RollbackSystem
import Testing

/// HMAC-SHA256 as webhooks are signed with it (libcrypto's `HMAC` through `hmacSHA256`) against the RFC 4231
/// vectors and, on random keys and messages across block boundaries, against Python's hmac (an independent
/// implementation).
@Suite struct HMACSHA256Tests {
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }

    /// RFC 4231 §4.2–4.8, HMAC-SHA-256 (test case 5's output is truncated to 128 bits there).
    @Test func rfc4231Vectors() {
        let largeKeyData =
            "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."
        let cases: [(key: [UInt8], data: [UInt8], hex: String)] = [
            (
                [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
            ),
            (
                Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            ),
            (
                [UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
            ),
            (
                Array(1...25), [UInt8](repeating: 0xcd, count: 50),
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
            ),
            (
                [UInt8](repeating: 0x0c, count: 20), Array("Test With Truncation".utf8),
                "a3b6167473100ee06e0c796c2955552b"
            ),
            (
                [UInt8](repeating: 0xaa, count: 131),
                Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
            ),
            (
                [UInt8](repeating: 0xaa, count: 131), Array(largeKeyData.utf8),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
            ),
        ]
        for (i, c) in cases.enumerated() {
            let mac = Self.hex(hmacSHA256(key: c.key, message: c.data))
            #expect(mac.hasPrefix(c.hex), "RFC 4231 test case \(i + 1)")
            #expect(mac.count == 64)
        }
    }

    @Test func matchesPythonOnRandomInputs() async throws {
        // Message lengths around every padding edge of SHA-256 (55, 56, 63, 64, 65, 119, 120 …) and key lengths
        // from empty to past the 64-byte block, with random bytes.
        var cases: [(key: [UInt8], message: [UInt8])] = []
        for length in Array(0...130) + [191, 192, 193, 1000, 4096] {
            let keyLength = [0, 1, 16, 32, 63, 64, 65, 100, 200][length % 9]
            cases.append(
                ((0..<keyLength).map { _ in .random(in: 0...255) }, (0..<length).map { _ in .random(in: 0...255) }))
        }
        let input = cases.map { "\(Self.hex($0.key)) \(Self.hex($0.message))" }.joined(separator: "\n") + "\n"
        let script = """
            import sys, hmac
            for line in sys.stdin:
                k, m = (bytes.fromhex(x) for x in line.split(" "))
                print(hmac.new(k, m, "sha256").hexdigest())
            """
        let r = try await ProcessRunner.run(["python3", "-c", script], stdin: Array(input.utf8), timeout: .seconds(60))
        try #require(r.succeeded, "python3: \(r.stderrText)")
        let lines = r.stdoutText.split(separator: "\n")
        try #require(lines.count == cases.count)
        for (c, line) in zip(cases, lines) {
            let ours = Self.hex(hmacSHA256(key: c.key, message: c.message))
            #expect(ours == String(line), "key \(c.key.count) bytes, message \(c.message.count) bytes")
        }
    }
}
