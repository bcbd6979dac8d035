import Testing
@testable import RollbackCore

/// The pure parts of `/metrics`: the listen address rule, the bounded no-data reasons, the text format's details.
/// (A live scrape checked by `promtool` is `TelemetryTests`.)
@Suite struct MetricsPageTests {
    @Test(arguments: [
        ("127.0.0.1:9465", TelemetryListen.tcp(host: "127.0.0.1", port: 9465)),
        ("127.10.20.30:1", .tcp(host: "127.10.20.30", port: 1)),
        ("[::1]:9465", .tcp(host: "::1", port: 9465)),
        ("/run/rollbackd/metrics.sock", .unix(path: "/run/rollbackd/metrics.sock")),
    ])
    func loopbackAndUnixSocketsAreAccepted(text: String, expected: TelemetryListen) throws {
        #expect(try TelemetryListen.parse(text).get() == expected)
    }

    @Test(arguments: [
        "0.0.0.0:9465", "10.0.0.1:9465", "localhost:9465", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.256:9465", "[::]:9465", "[::1]9465", "metrics.sock", "127.0.0.1:+80",
    ])
    func everythingElseIsRefused(text: String) {
        #expect(throws: TelemetryListen.ListenError.self) { try TelemetryListen.parse(text).get() }
    }

    @Test func noDataReasonsFallInTheBoundedSet() {
        let cases = [
            ("connection refused to http://127.0.0.1:1/metrics", "unreachable"),
            ("3 of 3 targets failed: timeout after 2s for http://a/metrics", "timeout"),
            ("HTTP 503 from http://p:9090 for up: down", "http_error"),
            ("/usr/bin/check printed \"x\", not a number", "bad_answer"),
            ("/usr/bin/check was killed by signal 9", "command_failed"),
            ("no probes in the last 30s", "no_samples"),
            ("not sampled yet", "not_sampled"),
            ("something new", "other"),
        ]
        for (reason, category) in cases {
            #expect(MetricsPage.noDataCategory(reason) == category, "\(reason)")
            #expect(MetricsPage.noDataReasons.contains(category))
        }
    }

    @Test func labelsAreEscapedAndNumbersWrittenAsPrometheusReadsThem() {
        #expect(MetricsPage.Page.labels([("a", "x\"y\\z\nw")]) == #"{a="x\"y\\z\nw"}"#)
        #expect(MetricsPage.Page.number(3) == "3")
        #expect(MetricsPage.Page.number(0.25) == "0.25")
        #expect(MetricsPage.Page.number(.infinity) == "+Inf")
        #expect(MetricsPage.Page.number(.nan) == "NaN")
    }

    @Test func histogramsAreCumulativeWithAnInfBucket() {
        var h = Histogram(bounds: [0.1, 1])
        for v in [0.05, 0.5, 0.7, 3] { h.observe(v) }
        #expect(h.cumulative == [1, 3, 4])
        var page = MetricsPage.Page()
        page.histogram("x_seconds", [], h)
        #expect(
            page.text == """
                x_seconds_bucket{le="0.1"} 1
                x_seconds_bucket{le="1"} 3
                x_seconds_bucket{le="+Inf"} 4
                x_seconds_sum 4.25
                x_seconds_count 4

                """)
    }

    @Test func theSampleHistoryIsBounded() {
        var h = SampleHistory(limit: 3)
        for i in 0..<5 {
            h.record(
                ["m": i == 2 ? .noData(reason: "x") : .value(Double(i))],
                at: Timestamp(millisecondsSinceEpoch: Int64(i) * 1000))
        }
        #expect(h.points["m"]?.map(\.value) == [nil, 3, 4])
        let window = h.points(
            of: "m", from: Timestamp(millisecondsSinceEpoch: 3000), to: Timestamp(millisecondsSinceEpoch: 4000))
        #expect(window.map(\.value) == [3, 4])
    }
}
