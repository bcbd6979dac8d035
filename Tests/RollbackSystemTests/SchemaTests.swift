import Testing
import RollbackCore
import RollbackSystem
import TestSupport

/// `thresholds.schema.json` checked by an independent validator (Python's `jsonschema`, draft 2020-12, with format
/// assertion on), and held to the loader: the same documents must be accepted and rejected by both.
@Suite struct SchemaTests {
    struct Verdict {
        var parsed: Bool
        var errors: [String]
    }

    struct Report {
        var schemaProblems: [String]
        var files: [String: Verdict]
        var documents: [Verdict]
    }

    /// Runs `Tests/Servers/schema_check.py` once for all files and documents.
    static func validate(files: [String] = [], documents: [String] = []) async throws -> Report {
        let request = JSONValue.object([
            ("files", .array(files.map { .string($0) })),
            ("documents", .array(documents.map { .string($0) })),
        ])
        let argv = ["python3", RepoPaths.server("schema_check.py"), Fixtures.schema]
        let r: ProcessResult
        do {
            r = try await ProcessRunner.run(
                argv, stdin: Array(request.serialized.utf8), timeout: .seconds(120),
                maxOutputBytes: 16 << 20)
        } catch {
            throw TestFailure("\(error) (make test-deps installs python3 and jsonschema)")
        }
        guard r.succeeded else {
            throw TestFailure("\(ProcessRunner.display(argv)): \(r.summary(timeout: .seconds(120)))")
        }
        let root: JSONValue
        do { root = try JSONParser.parse(r.stdoutText) } catch {
            throw TestFailure("schema_check.py printed no JSON: \(error)")
        }
        func verdict(_ v: JSONValue?) -> Verdict {
            var errors: [String] = []
            if case let .array(items)? = v?["errors"] {
                for case let .string(s) in items { errors.append(s) }
            }
            return Verdict(parsed: v?["parsed"] == .bool(true), errors: errors)
        }
        var problems: [String] = []
        if case let .array(items)? = root["schemaProblems"] { for case let .string(s) in items { problems.append(s) } }
        var byFile: [String: Verdict] = [:]
        if case let .object(members)? = root["files"] { for m in members { byFile[m.key] = verdict(m.value) } }
        var docs: [Verdict] = []
        if case let .array(items)? = root["documents"] { docs = items.map { verdict($0) } }
        guard docs.count == documents.count, byFile.count == Set(files).count else {
            throw TestFailure(
                "schema_check.py answered \(docs.count)/\(documents.count) documents, \(byFile.count)/\(files.count) files"
            )
        }
        return Report(schemaProblems: problems, files: byFile, documents: docs)
    }

    @Test func shippedTableReferencesTheSchema() throws {
        #expect(try Fixtures.json(Fixtures.shipped)["$schema"] == .string("./thresholds.schema.json"))
        #expect(
            try Fixtures.json(Fixtures.schema)["$schema"] == .string("https://json-schema.org/draft/2020-12/schema"))
    }

    /// The schema is a valid 2020-12 schema, and accepts the shipped table and every valid fixture.
    @Test func acceptsTheShippedTableAndEveryValidFixture() async throws {
        let files =
            [Fixtures.shipped] + Fixtures.jsonFiles(in: Fixtures.dir + "/valid")
            + Fixtures.jsonFiles(in: Fixtures.dir + "/warnings")
        #expect(files.count >= 12)
        let report = try await Self.validate(files: files)
        #expect(report.schemaProblems.isEmpty, "\(report.schemaProblems)")
        for file in files {
            let v = report.files[file]
            #expect(v?.parsed == true && v?.errors == [], "\(file): \(v?.errors ?? [])")
        }
    }

    /// Each broken file is rejected by the schema, except those only the loader can see (documented in
    /// expected.json with a "why"), which the schema must accept: the list of semantic checks stays honest.
    @Test func rejectsTheSchemaDetectableBrokenFiles() async throws {
        let corpus = Fixtures.broken
        #expect(corpus.count >= 25)
        let report = try await Self.validate(files: corpus.map(\.path))
        #expect(report.schemaProblems.isEmpty)
        var rejected = 0
        for entry in corpus {
            guard let v = report.files[entry.path] else {
                Issue.record("\(entry.file): no verdict")
                continue
            }
            switch entry.schema {
            case "reject":
                #expect(v.parsed && !v.errors.isEmpty, "\(entry.file): the schema accepted it")
                if !v.errors.isEmpty { rejected += 1 }
            case "accept":
                #expect(
                    v.parsed && v.errors.isEmpty,
                    "\(entry.file): marked semantic-only, but the schema rejects it: \(v.errors)")
            case "syntax":
                #expect(!v.parsed, "\(entry.file): marked as invalid JSON, but Python parsed it")
            default:
                Issue.record("\(entry.file): schema must be reject, accept or syntax, not \(entry.schema)")
            }
        }
        #expect(rejected >= 45)
    }

    /// One valid document, changed in one place at a time; the loader and the schema must both give the expected
    /// verdict. This pins the schema's duration, URL, name and path patterns to the Swift parsers.
    static let variants: [(path: String, json: String?, valid: Bool)] = [
        // Durations (Interval(parsing:)); interval is at least 100ms.
        ("interval", #""5s""#, true), ("interval", #""100ms""#, true), ("interval", #""99ms""#, false),
        ("interval", #""0100ms""#, true), ("interval", #""0m99ms""#, false), ("interval", #""1m5ms""#, true),
        ("interval", #""0s""#, false), ("interval", #""5""#, false), ("interval", #""5x""#, false),
        ("interval", #""-1s""#, false), ("interval", #""1.5s""#, false), ("interval", #""1m30s""#, true),
        ("interval", #""30s1m""#, false), ("interval", #""5s\n""#, false), ("interval", #"" 5s""#, false),
        ("interval", #""5S""#, false), ("interval", #""1234567890s""#, false), ("interval", #""999999999s""#, true),
        ("interval", "5", false), ("interval", #""1d""#, true), ("interval", #""1h2m3s4ms""#, true),
        ("interval", #""""#, false), ("interval", #""5ms5s""#, false), ("interval", nil, false),
        ("safety.cooldown", #""0s""#, true), ("safety.cooldown", #""0ms""#, true), ("safety.cooldown", #""""#, false),
        ("safety.cooldown", "null", false), ("safety.soak", #""0s""#, false), ("safety.soak", #""0d1ms""#, true),
        // URLs (URLParts): scheme, host, port 1-65535, no spaces.
        ("instances", #"["http://a"]"#, true), ("instances", #"["HTTP://A"]"#, true),
        ("instances", #"["https://a:8080/x?y#z"]"#, true), ("instances", #"["http://a:0"]"#, false),
        ("instances", #"["http://a:65535"]"#, true), ("instances", #"["http://a:65536"]"#, false),
        ("instances", #"["http://a:+80"]"#, true), ("instances", #"["http://a:-80"]"#, false),
        ("instances", #"["http://a:080"]"#, true), ("instances", #"["http://[::1]:80/"]"#, true),
        ("instances", #"["http://[::1]"]"#, true), ("instances", #"["http://[::1"]"#, false),
        ("instances", #"["http://[::1]x"]"#, false), ("instances", #"["http://user:pw@host:81"]"#, true),
        ("instances", #"["http://a@b@c"]"#, true), ("instances", #"["http://@"]"#, false),
        ("instances", #"["http://user@"]"#, false), ("instances", #"["ftp://a"]"#, false),
        ("instances", #"["http://"]"#, false), ("instances", #"["http://a b"]"#, false),
        ("instances", #"["http:///x"]"#, false), ("instances", #"["http://a:"]"#, false),
        ("instances", #"["http://a:b:80"]"#, true), ("instances", #"["http://a\n"]"#, false),
        ("instances", #"["http://a\r"]"#, true), ("instances", #"["http://a?x"]"#, true),
        ("instances", #"["http://:80"]"#, false), ("instances", #"["http://a:80x"]"#, false),
        ("instances", #"["http://a#f"]"#, true), ("instances", #"["http://a:99999999999999999999"]"#, false),
        ("instances", "[]", false), ("instances", #""http://a""#, false), ("instances", nil, false),
        // Triggers.
        ("triggers.0.name", #""a.b-c_D9""#, true), ("triggers.0.name", #""a b""#, false),
        ("triggers.0.name", #""""#, false), ("triggers.0.name", #""é""#, false),
        ("triggers.0.name", #""x\n""#, false), ("triggers.0.name", #""x/y""#, false), ("triggers.0.name", "5", false),
        ("triggers.0.respondWithin", #""immediate""#, true), ("triggers.0.respondWithin", #""Immediate""#, false),
        ("triggers.0.respondWithin", #""0s""#, false), ("triggers.0.respondWithin", #""1h""#, true),
        ("triggers.0.respondWithin", "5", false), ("triggers.0.respondWithin", #""immediately""#, false),
        ("triggers.0.condition", #"{"above": 0.5}"#, true), ("triggers.0.condition", "{}", false),
        ("triggers.0.condition", #"{"above": 0.1, "below": 0.01}"#, false),
        ("triggers.0.condition", #"{"aboveBaseline": 0}"#, false),
        ("triggers.0.condition", #"{"aboveBaseline": 1.5}"#, true),
        ("triggers.0.condition", #"{"belowBaseline": -1}"#, false),
        ("triggers.0.condition", #"{"above": "0.1"}"#, false),
        ("triggers.0.condition", #"{"over": 0.1}"#, false), ("triggers.0.condition", #"{"below": 0}"#, true),
        ("triggers.0.condition", #"{"above": 1}"#, true),
        ("triggers.0.breaches", "0", false), ("triggers.0.breaches", "1", true), ("triggers.0.breaches", "1000", true),
        ("triggers.0.breaches", "1001", false), ("triggers.0.breaches", "2.5", false),
        ("triggers.0.breaches", "3.0", true),
        ("triggers.0.breaches", #""3""#, false), ("triggers.0.breaches", "-1", false),
        ("triggers.0.breaches", "null", false),
        ("triggers.0.clears", "1000", true), ("triggers.0.noData", #""breach""#, true),
        ("triggers.0.dryRun", "true", true), ("triggers.0.dryRun", #""true""#, false),
        ("triggers.0.description", #""x""#, true), ("triggers.0.description", "1", false),
        ("triggers.0.metric", #"" ""#, false), ("triggers.0.severity", #""high""#, true), ("triggers", "[]", false),
        // Rollback strategies.
        ("rollback", #"{"strategy": "systemd-unit", "systemd-unit": {"template": "app@"}}"#, true),
        ("rollback", #"{"strategy": "systemd-unit", "systemd-unit": {"template": "app"}}"#, false),
        ("rollback", #"{"strategy": "systemd-unit", "systemd-unit": {"template": "app@\n"}}"#, false),
        ("rollback", #"{"strategy": "systemd-unit", "systemd-unit": {"template": "@"}}"#, true),
        ("rollback", #"{"strategy": "systemd-unit", "systemd-unit": {"template": " "}}"#, false),
        ("rollback", #"{"strategy": "command", "command": {"argv": ["/x"]}}"#, true),
        ("rollback", #"{"strategy": "command", "command": {"argv": [""]}}"#, false),
        ("rollback", #"{"strategy": "command", "command": {"argv": ["x", 1]}}"#, false),
        ("rollback", #"{"strategy": "command", "command": {"argv": []}}"#, false),
        ("rollback", #"{"strategy": "command", "command": {"argv": "x"}}"#, false),
        ("rollback", #"{"strategy": "command", "command": {"argv": ["/x", ""]}}"#, true),
        ("rollback", #"{"strategy": "command", "command": {}}"#, false),
        (
            "rollback",
            #"{"strategy": "command", "command": {"argv": ["/x"]}, "symlink": {"releasesDir": "/r", "currentLink": "/c"}}"#,
            false
        ),
        (
            "rollback",
            #"{"strategy": "haproxy-canary", "haproxy-canary": {"socket": "/s", "backend": "b", "canaryServer": "c", "mode": "off"}}"#,
            false
        ),
        (
            "rollback",
            #"{"strategy": "haproxy-canary", "haproxy-canary": {"socket": "s", "backend": "b", "canaryServer": "c"}}"#,
            false
        ),
        ("rollback", #"{"strategy": "feature-flag", "feature-flag": {"flag": "f"}}"#, false),
        (
            "rollback", #"{"strategy": "feature-flag", "feature-flag": {"flag": "f", "http": {"method": "POST"}}}"#,
            false
        ),
        (
            "rollback",
            #"{"strategy": "feature-flag", "feature-flag": {"flag": "f", "http": {"url": "http://f/x", "body": {"enabled": false}}}}"#,
            true
        ),
        ("rollback", #"{"strategy": "config", "config": {"files": ["/a"]}}"#, false),
        ("rollback", #"{"strategy": "config", "config": {"files": [], "directory": "/d"}}"#, false),
        ("rollback", #"{"strategy": "config", "config": {"files": ["rel"], "directory": "/d"}}"#, false),
        (
            "rollback",
            #"{"strategy": "nginx-blue-green", "nginx-blue-green": {"upstreamFile": "/u", "upstreamName": "u", "colors": {"a": ["h:1"], "b": ["h:2"]}}}"#,
            true
        ),
        (
            "rollback",
            #"{"strategy": "nginx-blue-green", "nginx-blue-green": {"upstreamFile": "/u", "upstreamName": "u", "colors": {"a": ["h:1"], "b": []}}}"#,
            false
        ),
        (
            "rollback",
            #"{"strategy": "nginx-blue-green", "nginx-blue-green": {"upstreamFile": "/u", "upstreamName": "u", "colors": {"a": ["h:1"], "b": ["h:2"]}, "versionURLs": {"a": "nope"}}}"#,
            false
        ),
        ("rollback", #"{"strategy": "kubernetes", "kubernetes": {"deployment": "d", "namespace": ""}}"#, false),
        ("rollback", #"{"strategy": "docker-swarm", "docker-swarm": {"service": "s", "image": "i"}}"#, true),
        ("rollback", #"{"symlink": {"releasesDir": "/r", "currentLink": "/c"}}"#, false),
        ("rollback.phaseTimeout", #""0s""#, false), ("rollback.backup", #""x""#, false),
        ("rollback.smokeURLs", #"["nope"]"#, false), ("rollback.smokeURLs", #"["http://a/"]"#, true),
        ("rollback.migrationsDir", #""""#, false), ("rollback.gitTagsRepo", #""rel""#, false),
        ("rollback.migrationsCompatible", "true", true),
        // Metrics of every type.
        (
            "metrics.unhealthy",
            #"{"type": "probe", "targets": ["http://a/h"], "measure": "errorRatio", "window": "1m"}"#, true
        ),
        (
            "metrics.unhealthy",
            #"{"type": "probe", "path": "/h", "measure": "unhealthyRatio", "expect": {"contains": "ok"}}"#, true
        ),
        (
            "metrics.unhealthy",
            #"{"type": "probe", "path": "/h", "measure": "unhealthyRatio", "expect": {"jsonField": "s"}}"#, false
        ),
        ("metrics.unhealthy", #"{"type": "probe", "path": "/h", "measure": "unhealthyRatio", "expect": {}}"#, false),
        (
            "metrics.unhealthy",
            #"{"type": "probe", "path": "/h", "measure": "unhealthyRatio", "expect": {"equals": 1}}"#, false
        ),
        (
            "metrics.unhealthy",
            #"{"type": "probe", "path": "/h", "measure": "unhealthyRatio", "expect": {"jsonField": "s", "equals": null}}"#,
            true
        ),
        ("metrics.unhealthy", #"{"type": "probe", "targets": [], "measure": "unhealthyRatio"}"#, false),
        ("metrics.unhealthy", #"{"type": "probe", "measure": "unhealthyRatio"}"#, false),
        ("metrics.unhealthy", #"{"type": "probe", "path": "h", "measure": "unhealthyRatio"}"#, false),
        ("metrics.unhealthy", #"{"type": "probe", "path": "/h"}"#, false),
        ("metrics.unhealthy", #"{"path": "/h", "measure": "unhealthyRatio"}"#, false),
        ("metrics.unhealthy.maxBodyBytes", "1023", false), ("metrics.unhealthy.maxBodyBytes", "1024", true),
        ("metrics.unhealthy.caFile", #""rel""#, false), ("metrics.unhealthy.followRedirects", #""yes""#, false),
        ("metrics.unhealthy.connectTimeout", #""0s""#, false), ("metrics.unhealthy.unit", #""percent""#, false),
        ("metrics.unhealthy.unit", #""seconds""#, true), ("metrics.unhealthy.quantile", "0", true),
        ("metrics.unhealthy.quantile", "-0.1", false), ("metrics.unhealthy.description", "{}", false),
        ("metrics.unhealthy", #"{"type": "scrape", "path": "/m", "measure": "quantile"}"#, false),
        ("metrics.unhealthy", #"{"type": "scrape", "path": "/m", "measure": "quantile", "histogram": "h"}"#, true),
        ("metrics.unhealthy", #"{"type": "scrape", "path": "/m", "measure": "gauge", "gauge": "g"}"#, true),
        ("metrics.unhealthy", #"{"type": "scrape", "path": "/m", "measure": "gauge"}"#, false),
        ("metrics.unhealthy", #"{"type": "scrape", "path": "/m", "measure": "rate", "counter": "c"}"#, true),
        ("metrics.unhealthy", #"{"type": "scrape", "path": "/m", "measure": "rate"}"#, false),
        (
            "metrics.unhealthy",
            #"{"type": "scrape", "path": "/m", "measure": "rate", "counter": "c", "labels": {"method": "GET|POST"}}"#,
            true
        ),
        ("metrics.error_rate.errorLabels", #"{"code": 5}"#, false), ("metrics.error_rate.errorLabels", nil, false),
        ("metrics.error_rate.errorLabels", #"{"code": "5..", "method": "POST"}"#, true),
        ("metrics.unhealthy", #"{"type": "prometheus", "url": "http://p:9090", "query": "up"}"#, true),
        ("metrics.unhealthy", #"{"type": "prometheus", "url": "http://p:9090"}"#, false),
        ("metrics.unhealthy", #"{"type": "prometheus", "url": "http://p:9090", "query": " "}"#, false),
        ("metrics.unhealthy", #"{"type": "prometheus", "url": "p:9090", "query": "up"}"#, false),
        ("metrics.unhealthy", #"{"type": "prometheus", "url": "http://p:9090", "query": "up", "path": "/x"}"#, false),
        ("metrics.unhealthy", #"{"type": "command", "argv": ["/x"], "value": "exitStatus"}"#, true),
        ("metrics.unhealthy", #"{"type": "command", "argv": ["/x"], "value": "exit"}"#, false),
        ("metrics.unhealthy", #"{"type": "command", "argv": ["/x"], "timeout": "0s"}"#, false),
        ("metrics.unhealthy", #"{"type": "command", "argv": ["/x"], "path": "/h"}"#, false),
        ("metrics.unhealthy", #"{"type": "command", "argv": ["/x"], "timeout": "2s", "caFile": "/ca"}"#, false),
        ("metrics.unhealthy", #"{"type": "command"}"#, false),
        ("metrics.unhealthy", "[]", false),
        // Version source.
        ("version", #"{"type": "strategy"}"#, true), ("version", #"{"type": "strategy", "url": "http://x"}"#, false),
        ("version", #"{"type": "url", "url": "http://a/v", "jsonField": "version", "timeout": "1s"}"#, true),
        ("version", #"{"type": "url"}"#, false), ("version", #"{"type": "file", "path": "/x"}"#, true),
        ("version", #"{"type": "file", "path": "x"}"#, false), ("version", "{}", false),
        // Notify.
        ("notify", #"{"journal": {"enabled": false, "identifier": "rb"}}"#, true),
        ("notify", #"{"journal": {"identifier": ""}}"#, false), ("notify", #"{"journal": {"enabled": "no"}}"#, false),
        (
            "notify",
            #"{"webhooks": [{"name": "a", "url": "https://h/x", "secretFile": "/s", "format": "slack", "events": []}]}"#,
            true
        ),
        (
            "notify",
            #"{"webhooks": [{"name": "a", "url": "https://h/x", "secretFile": "/s", "minSeverity": "urgent"}]}"#, false
        ),
        ("notify", #"{"webhooks": [{"name": "a", "url": "https://h/x"}]}"#, false),
        ("notify", #"{"webhooks": [{"name": "a", "url": "https://h/x", "secretFile": "/s", "retries": 3}]}"#, false),
        ("notify", #"{"maxAge": "0s"}"#, false), ("notify", #"{"webhooks": {}}"#, false),
        (
            "notify",
            #"{"webhooks": [{"name": "pd", "url": "https://events.pagerduty.com/v2/enqueue", "format": "pagerduty", "routingKeyFile": "/etc/rollbackd/pd.key"}]}"#,
            true
        ),
        (
            "notify",
            #"{"webhooks": [{"name": "pd", "url": "https://h/x", "format": "pagerduty", "secretFile": "/s", "routingKeyFile": "/k"}]}"#,
            true
        ),
        (
            "notify",
            #"{"webhooks": [{"name": "pd", "url": "https://h/x", "format": "pagerduty", "secretFile": "/s"}]}"#, false
        ),
        (
            "notify", #"{"webhooks": [{"name": "t", "url": "https://h/x", "format": "teams", "secretFile": "/s"}]}"#,
            true
        ),
        ("notify", #"{"webhooks": [{"name": "t", "url": "https://h/x", "format": "teams"}]}"#, false),
        (
            "notify",
            #"{"webhooks": [{"name": "s", "url": "https://h/x", "format": "slack", "secretFile": "/s", "routingKeyFile": "/k"}]}"#,
            false
        ),
        (
            "notify",
            #"{"webhooks": [{"name": "pd", "url": "https://h/x", "format": "pagerduty", "routingKeyFile": "k"}]}"#,
            false
        ),
        // Telemetry: loopback or a Unix socket only.
        ("telemetry", #"{"listen": "127.0.0.1:9465"}"#, true), ("telemetry", #"{"listen": "[::1]:9465"}"#, true),
        ("telemetry", #"{"listen": "127.1.2.3:65535"}"#, true),
        ("telemetry", #"{"listen": "/run/rollbackd/metrics.sock"}"#, true),
        ("telemetry", #"{"listen": "0.0.0.0:9465"}"#, false), ("telemetry", #"{"listen": "10.0.0.1:9465"}"#, false),
        ("telemetry", #"{"listen": "127.0.0.1:65536"}"#, false), ("telemetry", #"{"listen": "127.0.0.1:0"}"#, false),
        ("telemetry", #"{"listen": "127.0.0.1"}"#, false), ("telemetry", #"{"listen": "metrics.sock"}"#, false),
        ("telemetry", #"{"listen": ""}"#, false), ("telemetry", "{}", false),
        ("telemetry", #"{"listen": "127.0.0.1:9465", "path": "/m"}"#, false),
        // Safety.
        ("safety.budget", #"{"max": 0, "window": "1h"}"#, true),
        ("safety.budget", #"{"max": 101, "window": "1h"}"#, false),
        ("safety.budget", #"{"max": 1}"#, false), ("safety.blindAfter", "0", false),
        ("safety.verifyInterval", #""1s""#, true), ("safety.verifyFor", #""1h""#, true), ("safety.budget", "2", false),
        // Top level.
        ("$schema", "5", false), ("automation", #""off""#, true), ("automation", #""none""#, false),
        ("service", "5", false), ("extra", "1", false), ("metrics", "{}", false), ("service", nil, false),
    ]

    @Test func loaderAndSchemaAgreeOnEveryVariant() async throws {
        let base = try Fixtures.json(Fixtures.dir + "/valid/minimal.json")
        var documents: [String] = []
        for v in Self.variants {
            var new: JSONValue?
            if let json = v.json {
                do { new = try JSONParser.parse(json) } catch {
                    Issue.record("variant \(v.path) = \(json): \(error)")
                    new = nil
                }
            }
            documents.append(base.setting(v.path, to: new).serialized)
        }
        let report = try await Self.validate(documents: documents)
        for (i, v) in Self.variants.enumerated() {
            let what = "\(v.path) = \(v.json ?? "(removed)")"
            var loaderErrors: [String] = []
            do {
                _ = try Thresholds.load(text: documents[i], file: "variant")
            } catch {
                loaderErrors = error.lines
            }
            let schemaErrors = report.documents[i].errors
            #expect(loaderErrors.isEmpty == v.valid, "loader on \(what): \(loaderErrors)")
            #expect(schemaErrors.isEmpty == v.valid, "schema on \(what): \(schemaErrors)")
        }
    }

    /// Every object's keys are the loader's keys. The loader's unknown-key message lists the keys it read
    /// ("unknown key; expected one of …"), so a key added to a reader and not to the schema (or the reverse)
    /// fails here with its name.
    @Test func objectKeysMatchTheLoader() throws {
        let schema = try Fixtures.json(Fixtures.schema)
        let base = try Fixtures.json(Fixtures.dir + "/valid/minimal.json")
        let odd = "zzzzzzzzzzzz" // far from every real key, so no "did you mean"
        func parse(_ s: String) -> JSONValue {
            (try? JSONParser.parse(s)) ?? .null
        }
        func rollback(_ strategy: String) throws -> JSONValue {
            let file = strategy == "symlink" ? "minimal.json" : "strategy-\(strategy).json"
            return try Fixtures.json(Fixtures.dir + "/valid/" + file)["rollback"] ?? .null
        }
        // (the document, the JSON path of the object given the odd key, the schema object listing its properties)
        var cases: [(JSONValue, String, String)] = [
            (base, "", ""),
            (base.setting("version", to: parse(#"{"type": "strategy"}"#)), "version", "$defs/version/allOf/0/then"),
            (
                base.setting("version", to: parse(#"{"type": "url", "url": "http://a/v"}"#)), "version",
                "$defs/version/allOf/1/then"
            ),
            (
                base.setting("version", to: parse(#"{"type": "file", "path": "/v"}"#)), "version",
                "$defs/version/allOf/2/then"
            ),
            (base, "metrics.unhealthy", "$defs/probeMetric"),
            (
                base.setting("metrics.unhealthy.expect", to: parse(#"{"contains": "ok"}"#)), "metrics.unhealthy.expect",
                "$defs/probeMetric/properties/expect"
            ),
            (base, "metrics.error_rate", "$defs/scrapeMetric"),
            (
                base.setting(
                    "metrics.unhealthy", to: parse(#"{"type": "prometheus", "url": "http://p", "query": "up"}"#)),
                "metrics.unhealthy", "$defs/prometheusMetric"
            ),
            (
                base.setting("metrics.unhealthy", to: parse(#"{"type": "command", "argv": ["/x"]}"#)),
                "metrics.unhealthy", "$defs/commandMetric"
            ),
            (base, "triggers.0", "$defs/trigger"),
            (base, "triggers.0.condition", "$defs/condition"),
            (base, "safety", "$defs/safety"),
            (base.setting("telemetry", to: parse(#"{"listen": "127.0.0.1:9465"}"#)), "telemetry", "$defs/telemetry"),
            (base, "safety.budget", "$defs/safety/properties/budget"),
            (
                base.setting(
                    "notify",
                    to: parse(#"{"journal": {}, "webhooks": [{"name": "a", "url": "http://h", "secretFile": "/s"}]}"#)),
                "notify", "$defs/notify"
            ),
            (
                base.setting("notify", to: parse(#"{"journal": {}}"#)), "notify.journal",
                "$defs/notify/properties/journal"
            ),
            (
                base.setting(
                    "notify", to: parse(#"{"webhooks": [{"name": "a", "url": "http://h", "secretFile": "/s"}]}"#)),
                "notify.webhooks.0", "$defs/webhook"
            ),
            (
                base.setting("rollback", to: try rollback("feature-flag")), "rollback.feature-flag.http",
                "$defs/strategy-feature-flag/properties/http"
            ),
        ]
        for name in RollbackStrategy.names {
            let doc = base.setting("rollback", to: try rollback(name))
            cases.append((doc, "rollback." + name, "$defs/strategy-" + name))
            cases.append((doc, "rollback", "$defs/rollback"))
        }
        // A plan: each step is a strategy, its settings and the step's own keys.
        let plan = base.setting("rollback", to: try Fixtures.json(Fixtures.dir + "/valid/plan-steps.json")["rollback"])
        cases.append((plan, "rollback.steps.0", "$defs/rollbackStep"))
        let restore = base.setting(
            "rollback", to: try Fixtures.json(Fixtures.dir + "/valid/plan-restore.json")["rollback"])
        cases.append((restore, "rollback.steps.0.restore.0", "$defs/rollbackStep/properties/restore/items"))
        for (doc, objectPath, schemaPath) in cases {
            let keyPath = objectPath.isEmpty ? odd : objectPath + "." + odd
            let text = doc.setting(keyPath, to: .number(1)).serialized
            var lines: [String] = []
            do { _ = try Thresholds.load(text: text, file: "f") } catch { lines = error.lines }
            let jsonPath = keyPath.split(separator: ".").map { Int($0) != nil ? "[\($0)]" : "." + $0 }.joined()
            let prefix =
                "f: " + (jsonPath.hasPrefix(".") ? String(jsonPath.dropFirst()) : jsonPath)
                + ": unknown key; expected one of "
            guard let line = lines.first(where: { $0.hasPrefix(prefix) }) else {
                Issue.record("\(keyPath): no unknown-key error listing the known keys: \(lines)")
                continue
            }
            let loaderKeys = Set(line.dropFirst(prefix.count).split(separator: ", ").map(String.init))
            var node: JSONValue? = schema
            for part in schemaPath.split(separator: "/") {
                node =
                    Int(part).map { i in
                        if case let .array(items)? = node, items.indices.contains(i) {
                            return items[i]
                        } else {
                            return nil
                        }
                    } ?? node?[String(part)]
            }
            guard case let .object(props)? = node?["properties"] else {
                Issue.record("\(schemaPath): no properties in the schema")
                continue
            }
            var schemaKeys = Set(props.map(\.key))
            if objectPath == "rollback" || objectPath == "rollback.steps.0" {
                // The loader knows the chosen strategy's settings object; the schema lists all nine.
                var chosen = doc["rollback"]?["strategy"]
                if objectPath != "rollback", case let .array(steps)? = doc["rollback"]?["steps"] {
                    chosen = steps.first?["strategy"]
                }
                schemaKeys = schemaKeys.filter { !RollbackStrategy.names.contains($0) || chosen == .string($0) }
            }
            #expect(
                loaderKeys.subtracting(schemaKeys).isEmpty,
                "\(objectPath.isEmpty ? "top level" : objectPath): keys the loader reads but \(schemaPath) lacks: \(loaderKeys.subtracting(schemaKeys).sorted())"
            )
            #expect(
                schemaKeys.subtracting(loaderKeys).isEmpty,
                "\(objectPath.isEmpty ? "top level" : objectPath): keys in \(schemaPath) the loader rejects: \(schemaKeys.subtracting(loaderKeys).sorted())"
            )
        }
    }

    /// The schema's enums are the Swift model's: a case added in Swift must be added to the schema.
    @Test func enumsMatchTheModel() throws {
        let schema = try Fixtures.json(Fixtures.schema)
        func strings(_ v: JSONValue?) -> [String] {
            guard case let .array(items)? = v else { return [] }
            return items.compactMap { if case let .string(s) = $0 { s } else { nil } }
        }
        let defs = schema["$defs"]
        #expect(strings(defs?["automationLevel"]?["enum"]) == AutomationLevel.allCases.map(\.rawValue))
        #expect(Set(strings(defs?["severity"]?["enum"])) == Set(Severity.allCases.map(\.rawValue)))
        #expect(strings(defs?["eventKind"]?["enum"]) == EventKind.allCases.map(\.rawValue))
        #expect(strings(defs?["metricUnit"]?["enum"]) == MetricUnit.allCases.map(\.rawValue))
        #expect(strings(defs?["trigger"]?["properties"]?["noData"]?["enum"]) == NoDataPolicy.allCases.map(\.rawValue))
        #expect(strings(defs?["rollback"]?["properties"]?["strategy"]?["enum"]) == RollbackStrategy.names)
        #expect(
            strings(defs?["probeMetric"]?["properties"]?["measure"]?["enum"]) == ProbeMeasure.allCases.map(\.rawValue))
        #expect(
            strings(defs?["scrapeMetric"]?["properties"]?["measure"]?["enum"]) == ScrapeMeasure.allCases.map(\.rawValue)
        )
        #expect(
            strings(defs?["commandMetric"]?["properties"]?["value"]?["enum"]) == CommandValue.allCases.map(\.rawValue))
        #expect(strings(defs?["webhook"]?["properties"]?["format"]?["enum"]) == WebhookFormat.allCases.map(\.rawValue))
        #expect(
            strings(defs?["metric"]?["properties"]?["type"]?["enum"]) == ["probe", "scrape", "prometheus", "command"])
        for name in RollbackStrategy.names {
            #expect(defs?["strategy-" + name] != nil, "no settings schema for strategy \(name)")
        }
    }
}
