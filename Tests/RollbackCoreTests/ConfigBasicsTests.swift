import Testing
@testable import RollbackCore

@Suite struct IntervalTests {
    @Test(arguments: [
        ("500ms", Int64(500)), ("5s", 5000), ("2m", 120_000), ("1h", 3_600_000), ("1d", 86_400_000),
        ("1m30s", 90_000), ("0s", 0), ("1h2m3s4ms", 3_723_004),
    ])
    func parses(text: String, ms: Int64) {
        #expect(Interval(parsing: text)?.milliseconds == ms)
    }

    @Test(arguments: ["", "5", "s", "-5s", "5x", "5 s", "30s1m", "1.5s", "5S", "1m1m", "9999999999s"])
    func rejects(text: String) {
        #expect(Interval(parsing: text) == nil)
    }

    @Test func printsCanonically() {
        #expect(Interval.ms(90_000).description == "1m30s")
        #expect(Interval.ms(250).description == "250ms")
        #expect(Interval.zero.description == "0s")
    }

    @Test func formatsUTC() {
        // 2026-11-22T13:53:00.123Z
        let t = Timestamp(millisecondsSinceEpoch: 1_795_355_580_123)
        #expect(t.iso8601 == "2026-11-22T13:53:00.123Z")
        #expect(t.compactUTC == "20261122T135300Z")
        #expect(Timestamp(millisecondsSinceEpoch: 0).iso8601 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(millisecondsSinceEpoch: 951_782_400_000).iso8601 == "2000-02-29T00:00:00.000Z")
    }
}

@Suite struct JSONParserTests {
    @Test func parsesNestedValues() throws {
        let v = try JSONParser.parse(#"{"a": [1, 2.5, -3e2, true, false, null], "b": {"c": "x\u00e9\n"}}"#)
        #expect(v["a"] == .array([.number(1), .number(2.5), .number(-300), .bool(true), .bool(false), .null]))
        #expect(v["b"]?["c"] == .string("xé\n"))
    }

    @Test(arguments: [
        (#"{"a": 1,}"#, "line 1"), (#"{"a": 1, "a": 2}"#, "duplicate key \"a\""), ("[01]", "leading zeros"),
        (#"{"a": "\x"}"#, "invalid escape"), ("{\"a\": \"\u{01}\"}", "control character"), ("", "unexpected end"),
        ("[1] 2", "unexpected text"), ("// c\n{}", "unexpected character"), (#"{"a": tru}"#, "expected true"),
        (#""\ud800""#, "unpaired surrogate"),
    ])
    func rejects(text: String, fragment: String) {
        do {
            _ = try JSONParser.parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.description.contains(fragment), "\(error.description)")
        }
    }

    @Test func reportsLineAndColumn() {
        do {
            _ = try JSONParser.parse("{\n  \"a\": 1,\n  \"b\": ?\n}")
            Issue.record("accepted")
        } catch {
            #expect(error.line == 3)
            #expect(error.column == 8)
        }
    }

    @Test func serializesRoundTrip() throws {
        let text = #"{"a":[1,2.5,"x\"y"],"b":null,"c":{"d":true}}"#
        #expect(try JSONParser.parse(text).serialized == text)
    }
}
