import Testing
@testable import RollbackCore

/// Loader behaviour found while writing the broken-config corpus (Tests/Fixtures/broken).
@Suite struct ConfigLoadTests {
    static let base = """
        {
          "service": "shop",
          "interval": "5s",
          "instances": ["http://127.0.0.1:18081", "http://127.0.0.1:18082"],
          "metrics": {
            "error_rate": {"type": "scrape", "path": "/metrics", "measure": "errorRatio",
                           "counter": "http_requests_total", "errorLabels": {"code": "5.."}},
            "queue": {"type": "scrape", "path": "/metrics", "measure": "gauge", "gauge": "queue_depth"}
          },
          "triggers": [
            {"name": "errors", "metric": "error_rate", "condition": {"above": 0.1},
             "severity": "critical", "respondWithin": "2m", "automation": "full"}
          ],
          "rollback": {"strategy": "symlink", "symlink": {"releasesDir": "/srv/r", "currentLink": "/srv/c"}}
        }
        """

    /// The errors for `base` with `old` replaced by `new` (empty when it loads).
    static func errors(replacing old: String, with new: String) -> [String] {
        #expect(base.contains(old), "base has no \(old)")
        do {
            _ = try Thresholds.load(text: base.replacing(old, with: new), file: "t.json")
            return []
        } catch {
            return error.lines
        }
    }

    @Test func baseLoads() throws {
        _ = try Thresholds.load(text: Self.base, file: "t.json")
    }

    // An empty errorLabels set selects every sample: the error ratio would always be 1.
    @Test func rejectsEmptyErrorLabels() {
        #expect(
            Self.errors(replacing: #""errorLabels": {"code": "5.."}"#, with: #""errorLabels": {}"#) == [
                #"t.json: metrics.error_rate.errorLabels: must name at least one label matcher, e.g. {"code": "5.."} (an empty set counts every request as an error)"#
            ])
    }

    // "above": 10 on a ratio metric (10% meant) could never breach: a silently disabled trigger.
    @Test(arguments: [
        (#"{"above": 10}"#, "above", "10"), (#"{"below": -0.5}"#, "below", "-0.5"),
        (#"{"above": 1.01}"#, "above", "1.01"),
    ])
    func rejectsRatioThresholdOutsideZeroToOne(condition: String, key: String, shown: String) {
        #expect(
            Self.errors(replacing: #"{"above": 0.1}"#, with: condition) == [
                "t.json: triggers[0].condition.\(key): \(shown) is not a ratio between 0 and 1, but error_rate is a ratio metric (write 10% as 0.1)"
            ])
    }

    @Test func allowsAnyThresholdOnOtherUnitsAndBaselineFactors() {
        #expect(
            Self.errors(
                replacing: #""metric": "error_rate", "condition": {"above": 0.1}"#,
                with: #""metric": "queue", "condition": {"above": 10}"#) == [])
        #expect(Self.errors(replacing: #"{"above": 0.1}"#, with: #"{"aboveBaseline": 2}"#) == [])
        #expect(Self.errors(replacing: #"{"above": 0.1}"#, with: #"{"above": 1}"#) == [])
    }

    @Test func respondWithinNamesBothForms() {
        #expect(
            Self.errors(replacing: #""respondWithin": "2m""#, with: #""respondWithin": "immediately""#) == [
                #"t.json: triggers[0].respondWithin: "immediately" is neither "immediate" nor a duration such as "30s", "2m", "1h""#
            ])
        #expect(
            Self.errors(replacing: #""respondWithin": "2m""#, with: #""respondWithin": 120"#) == [
                #"t.json: triggers[0].respondWithin: expected "immediate" or a duration string such as "2m", found a number"#
            ])
        #expect(
            Self.errors(replacing: #""respondWithin": "2m""#, with: #""respondWithin": "0s""#) == [
                "t.json: triggers[0].respondWithin: must be longer than 0s"
            ])
    }

    // A typo'd strategy name is one error, not also "settings for strategy symlink, but strategy is not set".
    @Test func invalidStrategyIsOneError() {
        #expect(
            Self.errors(replacing: #""strategy": "symlink""#, with: #""strategy": "symlinks""#) == [
                #"t.json: rollback.strategy: "symlinks" is not one of symlink, nginx-blue-green, haproxy-canary, systemd-unit, kubernetes, docker-swarm, feature-flag, config, command"#
            ])
        #expect(
            Self.errors(replacing: #""strategy": "symlink", "#, with: "") == [
                "t.json: rollback.strategy: is required",
                #"t.json: rollback.symlink: settings for strategy symlink, but strategy is not set"#,
            ])
    }

    // One bad instance URL is one error, not also "needs the top-level instances" for every metric with a path.
    @Test func badInstanceIsOneError() {
        #expect(
            Self.errors(replacing: #""http://127.0.0.1:18082""#, with: #""127.0.0.1:18082""#) == [
                #"t.json: instances[1]: "127.0.0.1:18082" is not an absolute http:// or https:// URL"#
            ])
    }

    @Test func wholeNumberMessageForWrongType() {
        #expect(
            Self.errors(replacing: #""automation": "full"}"#, with: #""automation": "full", "breaches": "3"}"#) == [
                "t.json: triggers[0].breaches: expected a whole number from 1 to 1000, found a string"
            ])
    }

    // Duplicate keys and stray commas name the JSON path as well as the line and column.
    @Test func syntaxErrorsNameTheJSONPath() {
        #expect(
            Self.errors(replacing: #""severity": "critical""#, with: #""severity": "critical", "severity": "low""#) == [
                #"t.json: triggers[0].severity: invalid JSON at line 12, column 30: duplicate key "severity" (each key may appear once)"#
            ])
        #expect(
            Self.errors(replacing: #""automation": "full"}"#, with: #""automation": "full"},"#) == [
                "t.json: triggers: invalid JSON at line 12, column 74: trailing comma before ']' (JSON allows none)"
            ])
        #expect(
            Self.errors(replacing: #""currentLink": "/srv/c"}"#, with: #""currentLink": "/srv/c",}"#) == [
                "t.json: rollback.symlink: invalid JSON at line 14, column 99: trailing comma before '}' (JSON allows none)"
            ])
    }

    @Test func parserPathsThroughArraysAndOddKeys() {
        do {
            _ = try JSONParser.parse(#"{"a": [1, {"b c": {"d": 1, "d": 2}}]}"#)
            Issue.record("accepted a duplicate key")
        } catch {
            #expect(error.path == #"a[1]["b c"].d"#)
            #expect(error.description == #"line 1, column 28: duplicate key "d" (each key may appear once)"#)
        }
        do {
            _ = try JSONParser.parse("[1, 2, [3, ?]]")
            Issue.record("accepted ?")
        } catch {
            #expect(error.path == "[2][1]")
        }
    }

    // Ties in "did you mean" are broken alphabetically, so messages do not change between runs.
    @Test func suggestionIsDeterministic() {
        #expect(ObjectReader.closest(to: "ab", in: ["ac", "aa", "ad"]) == "aa")
        #expect(ObjectReader.closest(to: "timout", in: ["timeout", "connectTimeout"]) == "timeout")
        #expect(ObjectReader.closest(to: "zzzz", in: ["timeout"]) == nil)
    }
}

extension ConfigLoadTests {
    /// The verification window against the metric's own window: an error ratio over 30 s still shows the bad
    /// release's errors for up to 30 s after the swap, so a 20 s verification may fail a rollback that worked.
    @Test(arguments: [
        (#""verifyFor": "20s""#, true), // 30s window + 3 clears × 5s = 45s > 20s
        (#""verifyFor": "45s""#, false), // exactly enough
        (#""verifyFor": "2m""#, false),
    ])
    func warnsWhenTheMetricWindowOutlastsVerification(verify: String, warns: Bool) throws {
        let text = Self.base
            .replacing(#""errorLabels": {"code": "5.."}}"#, with: #""errorLabels": {"code": "5.."}, "window": "30s"}"#)
            .replacing(#""automation": "full"}"#, with: #""automation": "full", "clears": 3}"#)
            .replacing(#""rollback": {"#, with: #""safety": {\#(verify)}, "rollback": {"#)
        let loaded = try Thresholds.load(text: text, file: "t.json")
        let lines = loaded.warningLines.filter { $0.contains("window 30s plus errors's 3 clears") }
        #expect(lines.count == (warns ? 1 : 0), "\(loaded.warningLines)")
        if warns {
            #expect(
                lines.first?.hasPrefix("t.json: safety.verifyFor: 20s is shorter than metric error_rate's window 30s")
                    == true,
                "\(lines)")
        }
    }
}
