import Testing
@testable import RollbackCore

@Suite struct ExpositionParserTests {
    /// The intern table is sized by the input (16 slots for a small exposition): with many more long names and
    /// values than slots, colliding strings are told apart by their bytes and every sample keeps its own.
    @Test func aSmallInternTableNeverMixesUpStrings() throws {
        let values = (0..<200).map { "/api/v1/resource-\($0)/items" }
        for count in [3, 20, 200] {
            let text = values.prefix(count).enumerated().map { i, v in
                "a_metric_name_longer_than_15_bytes{handler=\"\(v)\"} \(i)\n"
            }.joined()
            let e = try ExpositionParser.parse(Array(text.utf8))
            #expect(e.samples.map(\.name) == Array(repeating: "a_metric_name_longer_than_15_bytes", count: count))
            #expect(e.samples.map { $0.labels.first?.value ?? "" } == Array(values.prefix(count)))
            #expect(e.samples.map(\.value) == (0..<count).map(Double.init))
        }
    }

    static let typical = """
        # HELP http_requests_total Requests served.
        # TYPE http_requests_total counter
        http_requests_total{code="200",method="get"} 1027
        http_requests_total{code="500",method="get"} 3 1395066363000
        # HELP http_request_duration_seconds Latency.
        # TYPE http_request_duration_seconds histogram
        http_request_duration_seconds_bucket{le="0.05"} 24054
        http_request_duration_seconds_bucket{le="0.1"} 33444
        http_request_duration_seconds_bucket{le="+Inf"} 144320
        http_request_duration_seconds_sum 53423
        http_request_duration_seconds_count 144320
        # A comment that is neither HELP nor TYPE.
        temperature{room="a\\"b\\\\c\\nd"} -3.5e-1
        up 1
        weird_values{k="nan"} NaN
        weird_values{k="inf"} +Inf
        weird_values{k="minf"} -Inf

        """

    @Test func parsesTheTypicalExposition() throws {
        let e = try ExpositionParser.parse(Array(Self.typical.utf8))
        #expect(e.samples.count == 12)
        #expect(e.lines == 17)
        #expect(e.sampleLines == 12)
        #expect(e.types == ["http_requests_total": .counter, "http_request_duration_seconds": .histogram])
        #expect(
            e.samples[0]
                == PromSample(
                    name: "http_requests_total", labels: [PromLabel("code", "200"), PromLabel("method", "get")],
                    value: 1027))
        #expect(e.samples[1].timestamp == 1_395_066_363_000)
        #expect(e.samples[4].label("le") == "+Inf")
        #expect(
            e.samples[7] == PromSample(name: "temperature", labels: [PromLabel("room", "a\"b\\c\nd")], value: -0.35))
        #expect(e.samples[8] == PromSample(name: "up", value: 1))
        #expect(e.samples[9].value.isNaN)
        #expect(e.samples[10].value == .infinity)
        #expect(e.samples[11].value == -.infinity)
    }

    @Test func keepsOnlyTheNamedSamplesButChecksEveryLine() throws {
        let e = try ExpositionParser.parse(
            Array(Self.typical.utf8), keeping: ["up", "http_request_duration_seconds_bucket"])
        #expect(
            e.samples.map(\.name) == [
                "http_request_duration_seconds_bucket", "http_request_duration_seconds_bucket",
                "http_request_duration_seconds_bucket", "up",
            ])
        #expect(e.sampleLines == 12)
        #expect(throws: ExpositionError(line: 2, message: "malformed sample other: \"x\" is not a number")) {
            try ExpositionParser.parse(Array("up 1\nother x\n".utf8), keeping: ["up"])
        }
    }

    @Test func toleratesBlanksCRLFAndTrailingCommas() throws {
        let text = "  \n\tfoo { a = \"1\" , b=\"2\", }   7  \r\nbar\t2\r\n\n"
        let e = try ExpositionParser.parse(Array(text.utf8))
        #expect(
            e.samples == [
                PromSample(name: "foo", labels: [PromLabel("a", "1"), PromLabel("b", "2")], value: 7),
                PromSample(name: "bar", value: 2),
            ])
        #expect(try ExpositionParser.parse([]).samples.isEmpty)
    }

    @Test(arguments: [
        ("up 1", "line 1: truncated: the exposition does not end with a newline (was the response cut off?)"),
        (
            "up 1\nhttp_requests_total{code=\"20",
            "line 2: truncated: the exposition does not end with a newline (was the response cut off?)"
        ),
        ("up 1\n\nup\n", "line 3: malformed sample up: no value"),
        ("up abc\n", "line 1: malformed sample up: \"abc\" is not a number"),
        ("up 1 2 3\n", "line 1: malformed sample up: unexpected \"3\" after the timestamp"),
        ("up 1 1.5\n", "line 1: malformed sample up: \"1.5\" is not a timestamp in milliseconds"),
        ("up{a=\"1\" 1\n", "line 1: malformed sample up: expected , or } after label a, found \"1\""),
        ("up{a=\"1\n", "line 1: malformed sample up: the value of label a is not closed with \""),
        ("up{1a=\"1\"} 1\n", "line 1: malformed sample up: expected a label name, found \"1a=\"1\"} 1\""),
        ("up{a 1\n", "line 1: malformed sample up: expected = after label a, found \"1\""),
        ("up{a=1} 1\n", "line 1: malformed sample up: expected a quoted value for label a, found \"1} 1\""),
        ("up{a=\"x\\ty\"} 1\n", "line 1: label a of up has an invalid escape \\t"),
        ("9up 1\n", "line 1: malformed sample: expected a metric name, found \"9up 1\""),
        ("up{a=\"1\"}1\n", "line 1: malformed sample up: unexpected \"1\" after the metric name"),
        ("up{\n", "line 1: malformed sample up: the label set is not closed with }"),
    ])
    func namesTheLineAndTheProblem(text: String, message: String) {
        do {
            _ = try ExpositionParser.parse(Array(text.utf8))
            Issue.record("parsed \(text)")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func rejectsInvalidUTF8InKeptLabelsOnly() throws {
        let bytes: [UInt8] = Array("ok 1\nbad{path=\"/a".utf8) + [0xFF, 0xFE] + Array("\"} 1\n".utf8)
        #expect(throws: ExpositionError(line: 2, message: "label path of bad is not valid UTF-8")) {
            try ExpositionParser.parse(bytes)
        }
        // A series the metric does not read does not blind it.
        let e = try ExpositionParser.parse(bytes, keeping: ["ok"])
        #expect(e.samples == [PromSample(name: "ok", value: 1)])
        // Valid multi-byte UTF-8 is fine.
        let utf = try ExpositionParser.parse(Array("m{city=\"Zürich\"} 1\n".utf8))
        #expect(utf.samples[0].label("city") == "Zürich")
    }

    @Test(arguments: [
        ("1", 1.0), ("-1.5", -1.5), ("1e3", 1000), ("1.5E-3", 0.0015), ("0.1", 0.1), ("0.05", 0.05), (".5", 0.5),
        ("5.", 5), ("+7", 7), ("0", 0), ("00012.50", 12.5), ("2.5e+2", 250), ("1e-300", 1e-300),
        ("123456789012345678901", 123456789012345678901.0), ("0.30000000000000004", 0.30000000000000004),
        ("+Inf", .infinity), ("-Inf", -.infinity), ("Inf", .infinity),
        ("1.7976931348623157e308", .greatestFiniteMagnitude),
        ("0x1p3", 8), ("9007199254740993", 9007199254740992),
    ])
    func parsesNumbers(text: String, expected: Double) {
        #expect(ExpositionParser.parseValue(text) == expected)
    }

    @Test(arguments: ["", "-", "1e", "abc", "1..2", "1_000", "1,5", "e5", "--1"])
    func rejectsNonNumbers(text: String) {
        #expect(ExpositionParser.parseValue(text) == nil)
    }

    @Test func nanParses() {
        #expect(ExpositionParser.parseValue("NaN")?.isNaN == true)
    }

    @Test func everyPrintedDoubleRoundTrips() {
        // A fixed-seed generator keeps the test deterministic.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let v = Double(bitPattern: state >> 2) // finite, positive, wide range of exponents
            guard v.isFinite else { continue }
            for text in [v.description, (-v).description, String(Double(state % 1_000_000) / 1000)] {
                #expect(ExpositionParser.parseValue(text) == Double(text), "\(text)")
            }
        }
    }
}
