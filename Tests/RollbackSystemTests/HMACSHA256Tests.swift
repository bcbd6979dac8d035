import RollbackCore
@testable import RollbackSystem
import Testing

/// Our SHA-256 and HMAC-SHA256 (what signs every webhook) against the published vectors and, on random inputs
/// across block boundaries, against Python's hashlib and hmac (an independent implementation).
@Suite struct HMACSHA256Tests {
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }

    @Test func fipsVectors() {
        #expect(Self.hex(SHA256Digest.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(
            Self.hex(SHA256Digest.hash(Array("abc".utf8)))
                == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            Self.hex(SHA256Digest.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // A million "a", fed in uneven pieces: the result does not depend on how the input is split.
        var d = SHA256Digest()
        var left = 1_000_000, piece = 1
        while left > 0 {
            let n = min(piece, left)
            d.update(repeatElement(UInt8(ascii: "a"), count: n))
            left -= n
            piece = piece % 97 + 13
        }
        #expect(Self.hex(d.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func rfc4231Vectors() {
        #expect(
            Self.hex(hmacSHA256(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(
            Self.hex(hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        // A key longer than the block is hashed first.
        #expect(
            Self.hex(
                hmacSHA256(
                    key: [UInt8](repeating: 0xaa, count: 131),
                    message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test func matchesPythonOnRandomInputs() async throws {
        // Message lengths around every padding edge (55, 56, 63, 64, 65, 119, 120 …) and key lengths up to past
        // the 64-byte block, with random bytes.
        var cases: [(key: [UInt8], message: [UInt8])] = []
        for length in Array(0...130) + [191, 192, 193, 1000, 4096] {
            let keyLength = [0, 1, 16, 32, 63, 64, 65, 100, 200][length % 9]
            cases.append(
                ((0..<keyLength).map { _ in .random(in: 0...255) }, (0..<length).map { _ in .random(in: 0...255) }))
        }
        let input = cases.map { "\(Self.hex($0.key)) \(Self.hex($0.message))" }.joined(separator: "\n") + "\n"
        let script = """
            import sys, hashlib, hmac
            for line in sys.stdin:
                k, m = (bytes.fromhex(x) for x in line.split(" "))
                print(hashlib.sha256(m).hexdigest(), hmac.new(k, m, "sha256").hexdigest())
            """
        let r = try await ProcessRunner.run(["python3", "-c", script], stdin: Array(input.utf8), timeout: .seconds(60))
        try #require(r.succeeded, "python3: \(r.stderrText)")
        let lines = r.stdoutText.split(separator: "\n")
        try #require(lines.count == cases.count)
        for (c, line) in zip(cases, lines) {
            let ours =
                "\(Self.hex(SHA256Digest.hash(c.message))) \(Self.hex(hmacSHA256(key: c.key, message: c.message)))"
            #expect(ours == String(line), "key \(c.key.count) bytes, message \(c.message.count) bytes")
        }
    }
}
