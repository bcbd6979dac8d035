#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import RollbackCore
@testable import RollbackSystem
import Testing
import TestSupport
import RollbackVersion

@Suite("webhook signing and payload")
struct WebhookUnitTests {
    @Test func whsecSecretsDecodeWithAndWithoutPadding() throws {
        for n in 1..<64 {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255) }
            let text = Data(bytes).base64EncodedString()
            #expect(try WebhookSecret.parse("whsec_" + text, path: "/s").key == bytes)
            #expect(try WebhookSecret.parse("whsec_" + text.replacing("=", with: ""), path: "/s").key == bytes)
        }
        #expect(try WebhookSecret.parse("whsec_Zm9vYmFy", path: "/s").key == Array("foobar".utf8))
        for bad in ["whsec_Zm9v!", "whsec_Z", "whsec_"] {
            #expect(throws: WebhookSecretError(path: "/s", reason: "whsec_ secret is not valid base64")) {
                try WebhookSecret.parse(bad, path: "/s")
            }
        }
    }

    @Test func signatureMatchesTheStandardWebhooksReference() async throws {
        // Sign with the Python `standardwebhooks` package (an independent implementation) and compare.
        let secret = newSecret()
        let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
        let timestamp: Int64 = 1_795_355_978
        let body = #"{"type":"rollbackd.decision","data":{"message":"Zürich → 14%"}}"#
        let script = """
            import sys, datetime
            from standardwebhooks.webhooks import Webhook
            print(Webhook(sys.argv[1]).sign(sys.argv[2], datetime.datetime.fromtimestamp(int(sys.argv[3]), tz=datetime.timezone.utc), sys.argv[4]))
            """
        let r = try await ProcessRunner.run(
            ["python3", "-c", script, secret, id, String(timestamp), body], timeout: .seconds(30))
        try #require(r.succeeded, "python standardwebhooks: \(r.stderrText)")
        let key = try WebhookSecret.parse(secret, path: "(test)")
        let ours = WebhookSigning.signature(id: id, timestamp: timestamp, body: Array(body.utf8), secret: key)
        #expect(ours == httpTrim(r.stdoutText))
        #expect(
            WebhookSigning.verify(
                id: id, timestamp: timestamp, body: Array(body.utf8), signatureHeader: "v1,bad= " + ours, secret: key))
        #expect(
            !WebhookSigning.verify(
                id: id, timestamp: timestamp + 1, body: Array(body.utf8), signatureHeader: ours, secret: key))
    }

    @Test func secretFiles() throws {
        #expect(try WebhookSecret.parse("whsec_AAEC\n", path: "x").key == [0, 1, 2])
        #expect(try WebhookSecret.parse("  plain-secret \n", path: "x").key == Array("plain-secret".utf8))
        #expect(throws: WebhookSecretError(path: "/etc/rollbackd/hook.secret", reason: "the file is empty")) {
            try WebhookSecret.parse("\n", path: "/etc/rollbackd/hook.secret")
        }
        #expect(throws: WebhookSecretError(path: "s", reason: "whsec_ secret is not valid base64")) {
            try WebhookSecret.parse("whsec_%%%", path: "s")
        }
        do {
            _ = try WebhookSecret.load(path: "/nonexistent/hook.secret")
            Issue.record("no error")
        } catch {
            #expect(
                error.description.hasPrefix(
                    "webhook secret file /nonexistent/hook.secret: open /nonexistent/hook.secret:"))
        }
    }

    @Test func messageIDsAreUnique() {
        let ids = (0..<10_000).map { _ in WebhookSigning.newMessageID() }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.hasPrefix("msg_") && $0.count == 36 })
    }

    @Test func standardPayloadIsVersionedAndCarriesTheIncident() throws {
        var tracker = IncidentTracker()
        let e1 = drillEvent(1, kind: .triggerFiring)
        _ = tracker.apply(e1)
        let e2 = drillEvent(2, kind: .rollbackStarted)
        let summary = tracker.apply(e2)
        let body = WebhookPayload.body(.standard, e2, incident: summary, host: "web-1", service: "checkout")
        let j = try JSONParser.parse(bytes: body)
        #expect(j["type"] == .string("rollbackd.rollback_started"))
        #expect(j["version"] == .number(1))
        #expect(j["timestamp"] == .string(e2.at.iso8601))
        #expect(j["data"]?["host"] == .string("web-1"))
        #expect(j["data"]?["service"] == .string("checkout"))
        #expect(j["data"]?["agent"] == .string("rollbackd/" + RollbackVersion.current))
        #expect(j["data"]?["event"]?["kind"] == .string("rollback_started"))
        #expect(j["data"]?["event"]?["fromVersion"] == .string("v2"))
        #expect(j["data"]?["incident"]?["id"] == .string("inc-t"))
        #expect(j["data"]?["incident"]?["status"] == .string("rolling_back"))
        #expect(j["data"]?["incident"]?["openedAt"] == .string(e1.at.iso8601))
        let eventJSON = try #require(j["data"]?["event"])
        #expect(EventJSON.event(from: eventJSON) == e2)
    }

    @Test func slackPayloadIsText() throws {
        var e = drillEvent(1)
        e.message = "rolling back <v2> & more"
        let j = try JSONParser.parse(
            bytes: WebhookPayload.body(.slack, e, incident: nil, host: "web-1", service: "checkout"))
        guard case let .string(text)? = j["text"] else { Issue.record("no text"); return }
        #expect(text.hasPrefix(":rotating_light: *CRITICAL* checkout on web-1: rolling back &lt;v2&gt; &amp; more\n"))
        #expect(text.contains("incident `inc-t`"))
        #expect(text.contains("version v2 → v1"))
    }

    @Test func filtersBySeverityAndKind() {
        let w = webhook(
            "w", url: "http://x", secretFile: "/s", minSeverity: .high, events: ["decision", "rollback_failed"])
        #expect(WebhookPayload.accepts(w, drillEvent(1, kind: .decision, severity: .critical)))
        #expect(WebhookPayload.accepts(w, drillEvent(1, kind: .decision, severity: .high)))
        #expect(!WebhookPayload.accepts(w, drillEvent(1, kind: .decision, severity: .medium)))
        #expect(!WebhookPayload.accepts(w, drillEvent(1, kind: .rollbackStarted, severity: .critical)))
        let all = webhook("w", url: "http://x", secretFile: "/s")
        #expect(EventKind.allCases.allSatisfy { WebhookPayload.accepts(all, drillEvent(1, kind: $0, severity: .low)) })
    }

    @Test func retryClassification() {
        func response(_ status: Int, retryAfter: Interval? = nil) -> Result<HTTPResponse, HTTPError> {
            .success(
                HTTPResponse(
                    url: "http://h/x", status: status, headers: [], body: [], timing: HTTPTiming(),
                    retryAfter: retryAfter))
        }
        #expect(DeliveryOutcome.classify(response(204)) == .delivered(status: 204))
        for s in [408, 429, 500, 502, 503, 504] {
            guard case .retry = DeliveryOutcome.classify(response(s)) else {
                Issue.record("\(s) not retried"); continue
            }
        }
        for s in [301, 400, 401, 403, 404, 410, 422] {
            guard case .reject(status: s, _) = DeliveryOutcome.classify(response(s)) else {
                Issue.record("\(s) retried"); continue
            }
        }
        guard
            case .retry(_, after: nil) = DeliveryOutcome.classify(
                .failure(HTTPError(url: "http://h", kind: .connectionRefused)))
        else {
            Issue.record("connection refused not retried"); return
        }
        // The receiver's Retry-After, as libcurl read it (seconds or an HTTP date: HTTPClientTests).
        #expect(
            DeliveryOutcome.classify(response(429, retryAfter: .seconds(7)))
                == .retry(reason: "HTTP 429 from http://h/x", after: .seconds(7)))
    }

    @Test func journalShowsNoWebhookPath() {
        #expect(
            WebhookWorker.displayURL("https://hooks.slack.com/services/T0/B0/secret") == "https://hooks.slack.com/…")
        #expect(WebhookWorker.displayURL("https://user:pw@h.example:8443?token=x") == "https://***@h.example:8443/…")
        #expect(WebhookWorker.displayURL("http://h.example") == "http://h.example")
    }

    @Test func backoffGrowsWithJitterAndIsCapped() {
        var p = DeliveryPolicy()
        p.initialBackoff = .seconds(1)
        p.maxBackoff = .seconds(60)
        #expect(p.backoff(failures: 1, random: 0) == .ms(500))
        #expect(p.backoff(failures: 1, random: 0.999_999) == .ms(999))
        #expect(p.backoff(failures: 3, random: 0) == .seconds(2))
        #expect(p.backoff(failures: 50, random: 1) == .seconds(60))
        for f in 1...20 {
            let d = p.backoff(failures: f, random: Double.random(in: 0..<1))
            #expect(d >= .ms(500) && d <= .seconds(60))
        }
    }
}

@Suite("webhooks for real")
struct WebhookSystemTests {
    @Test func everySignatureVerifiesAtAnIndependentReceiver() async throws {
        try await Journald.ensure()
        let scene = try WebhookScene("rbhook", trailingNewline: true)
        defer { scene.remove() }
        let dir = scene.dir
        let receiver = try await scene.receiver()
        let identifier = uniqueIdentifier("rbhook")
        let config = notifyConfig(
            [
                webhook("all", url: receiver.base + "/ok", secretFile: dir + "/secret"),
                webhook(
                    "slack", url: receiver.base + "/ok?slack", secretFile: dir + "/secret", format: .slack,
                    minSeverity: .high, events: ["decision", "rollback_failed"]),
            ], identifier: identifier)
        let notifier = EventNotifier(
            config: config, service: "checkout", spoolDirectory: dir + "/spool",
            policy: fastPolicy(), journalWriter: JournalWriter(target: .journal))
        await notifier.start()
        await notifier.notify(drillEvent(0, kind: .triggerFiring, severity: .critical))
        await notifier.notify(drillEvent(1, kind: .decision, severity: .critical))
        await notifier.notify(drillEvent(2, kind: .decision, severity: .medium))
        await notifier.notify(drillEvent(3, kind: .rollbackFailed, severity: .critical))
        #expect(await notifier.drain(timeout: .seconds(60)))
        await notifier.stop()

        let got = try receiver.requests()
        #expect(got.count == 6)
        let allVerified = got.allSatisfy { $0.verified }
        #expect(allVerified, "\(got.map { $0.error ?? "" })")
        let standard = got.filter { $0.path == "/ok" }
        #expect(
            Set(standard.compactMap(\.type)) == [
                "rollbackd.trigger_firing", "rollbackd.decision", "rollbackd.rollback_failed",
            ])
        #expect(Set(drillSeqs(standard)) == [0, 1, 2, 3])
        let slack = got.filter { $0.path == "/ok?slack" }
        #expect(slack.count == 2)
        #expect(slack.allSatisfy { if case .string? = $0.body["text"] { return true } else { return false } })
        #expect(Set(got.map(\.id)).count == 6)
        let now = SystemTime.now().millisecondsSinceEpoch / 1000
        #expect(got.allSatisfy { abs($0.timestamp - now) < 60 })
        // The spool is empty once everything is delivered.
        #expect(notifier.spool.count(webhook: "all") == 0 && notifier.spool.count(webhook: "slack") == 0)
        // And every event is in the journal as well.
        let entries = try await journalEntries(["SYSLOG_IDENTIFIER=\(identifier)"], atLeast: 4)
        #expect(entries.count == 4)
    }

    @Test func aWrongSecretFailsVerificationAndIsReported() async throws {
        try await Journald.ensure()
        let scratch = try ScratchDir("rbwrong")
        defer { scratch.remove() }
        let dir = scratch.path
        try FileIO.writeAtomically(path: dir + "/secret", bytes: Array(newSecret().utf8))
        let receiver = try await Receiver.start(secret: newSecret(), log: dir + "/received.jsonl")
        let identifier = uniqueIdentifier("rbwrong")
        let notifier = EventNotifier(
            config: notifyConfig(
                [webhook("ops", url: receiver.base + "/ok", secretFile: dir + "/secret")],
                identifier: identifier),
            service: "checkout", spoolDirectory: dir + "/spool", policy: fastPolicy(),
            journalWriter: JournalWriter(target: .journal))
        await notifier.start()
        await notifier.notify(drillEvent(1, incident: "inc-wrong"))
        #expect(await notifier.drain(timeout: .seconds(60)))
        await notifier.stop()
        let got = try receiver.requests()
        #expect(got.count == 1, "401 is not retried")
        #expect(got.first?.verified == false)
        #expect(got.first?.error?.contains("No matching signature found") == true)
        #expect(await notifier.stats()["ops"]?.dropped == 1)
        let failures = try await journalEntries(["SYSLOG_IDENTIFIER=\(identifier)", "ROLLBACKD_EVENT=delivery_failed"])
        try #require(failures.count == 1)
        #expect(failures[0]["PRIORITY"] == "3")
        #expect(failures[0]["ROLLBACKD_WEBHOOK"] == "ops")
        #expect(failures[0]["ROLLBACKD_STATUS"] == "401")
        #expect(failures[0]["ROLLBACKD_INCIDENT"] == "inc-wrong")
        #expect(failures[0]["ROLLBACKD_WEBHOOK_ID"] == got.first?.id)
        #expect(failures[0]["MESSAGE_ID"] == JournalFields.messageID(for: .deliveryFailed))
        // The URL's path may be a secret (Slack's are): the journal shows scheme and host only.
        #expect(failures[0]["ROLLBACKD_URL"] == receiver.base + "/…")
        #expect(
            failures[0]["MESSAGE"]?.contains("HTTP 401 from \(receiver.base)/… (not retried)") == true,
            "\(failures[0]["MESSAGE"] ?? "")")
    }

    @Test func retryAfterIsHonoured() async throws {
        try await Journald.ensure()
        let scene = try WebhookScene("rb429")
        defer { scene.remove() }
        let dir = scene.dir
        let receiver = try await scene.receiver()
        let notifier = EventNotifier(
            config: notifyConfig(
                [webhook("ops", url: receiver.base + "/retry-after/2", secretFile: dir + "/secret")],
                identifier: uniqueIdentifier("rb429")),
            service: "checkout", spoolDirectory: dir + "/spool", policy: fastPolicy(),
            journalWriter: JournalWriter(target: .journal))
        await notifier.start()
        await notifier.notify(drillEvent(1))
        #expect(await notifier.drain(timeout: .seconds(60)))
        await notifier.stop()
        let got = try receiver.requests()
        try #require(got.count == 2)
        #expect(got[0].id == got[1].id, "a retry keeps its webhook-id")
        let gap = got[1].receivedAt - got[0].receivedAt
        // The backoff alone would retry after 10–20 ms; Retry-After: 2 makes it wait two seconds. The upper bound
        // only rules out reading it as minutes: on a loaded runner the retry has come 7 s after the first attempt.
        #expect(gap >= 1.95 && gap < 15, "retried after \(gap)s")
        #expect(got.allSatisfy { $0.verified })
    }

    @Test func fiveHundredsAreRetriedAndOtherFourHundredsAreNot() async throws {
        try await Journald.ensure()
        let scene = try WebhookScene("rb5xx")
        defer { scene.remove() }
        let dir = scene.dir
        let receiver = try await scene.receiver()
        let notifier = EventNotifier(
            config: notifyConfig(
                [
                    webhook("flaky", url: receiver.base + "/fail/3", secretFile: dir + "/secret"),
                    webhook("gone", url: receiver.base + "/status/404", secretFile: dir + "/secret"),
                ], identifier: uniqueIdentifier("rb5xx")), service: "checkout", spoolDirectory: dir + "/spool",
            policy: fastPolicy(), journalWriter: JournalWriter(target: .journal))
        await notifier.start()
        await notifier.notify(drillEvent(1))
        #expect(await notifier.drain(timeout: .seconds(60)))
        await notifier.stop()
        let got = try receiver.requests()
        #expect(got.filter { $0.path == "/fail/3" }.count == 4)
        #expect(got.filter { $0.path == "/status/404" }.count == 1)
        let stats = await notifier.stats()
        #expect(stats["flaky"]?.delivered == 1 && stats["flaky"]?.failedAttempts == 3)
        #expect(stats["gone"]?.dropped == 1)
    }

    @Test func tooOldNotificationsAreDroppedWithAJournalError() async throws {
        try await Journald.ensure()
        let scratch = try ScratchDir("rbage")
        defer { scratch.remove() }
        let dir = scratch.path
        try FileIO.writeAtomically(path: dir + "/secret", bytes: Array(newSecret().utf8))
        let identifier = uniqueIdentifier("rbage")
        let notifier = EventNotifier(
            config: notifyConfig(
                [webhook("down", url: "http://127.0.0.1:\(unusedPort())/ok", secretFile: dir + "/secret")],
                identifier: identifier, maxAge: .seconds(3)),
            service: "checkout", spoolDirectory: dir + "/spool", policy: fastPolicy(),
            journalWriter: JournalWriter(target: .journal))
        await notifier.start()
        await notifier.notify(drillEvent(1, incident: "inc-old"))
        await notifier.flush()
        #expect(notifier.spool.count(webhook: "down") == 1)
        #expect(await notifier.drain(timeout: .seconds(60)))
        await notifier.stop()
        #expect(notifier.spool.count(webhook: "down") == 0)
        let stats = await notifier.stats()
        // At least the first attempt failed before the 3 s maxAge ran out; how many retries fit in depends on how
        // busy the machine is (retries are shown by the spool tests).
        #expect(
            stats["down"]?.dropped == 1 && (stats["down"]?.failedAttempts ?? 0) >= 1,
            "\(String(describing: stats["down"]))")
        let failures = try await journalEntries(["SYSLOG_IDENTIFIER=\(identifier)", "ROLLBACKD_EVENT=delivery_failed"])
        try #require(failures.count == 1)
        #expect(failures[0]["MESSAGE"]?.contains("longer than maxAge 3s") == true, "\(failures[0]["MESSAGE"] ?? "")")
        #expect(failures[0]["ROLLBACKD_INCIDENT"] == "inc-old")
        // The first failed attempt was journaled as a warning too.
        let warnings = try await journalEntries([
            "SYSLOG_IDENTIFIER=\(identifier)", "ROLLBACKD_WEBHOOK=down", "PRIORITY=4",
        ])
        #expect(warnings.first?["MESSAGE"]?.contains("connection refused") == true)
    }

    @Test func aHangingReceiverDoesNotDelayARollback() async throws {
        try await Journald.ensure()
        let scene = try WebhookScene("rbhang")
        defer { scene.remove() }
        let dir = scene.dir
        let receiver = try await scene.receiver()
        let notifier = EventNotifier(
            config: notifyConfig(
                [
                    webhook(
                        "hang", url: receiver.base + "/hang", secretFile: dir + "/secret",
                        timeout: .seconds(30))
                ],
                identifier: uniqueIdentifier("rbhang")),
            service: "checkout", spoolDirectory: dir + "/spool", policy: fastPolicy(),
            journalWriter: JournalWriter(target: .journal))
        await notifier.start()
        // Prime: the receiver holds this one open for the whole test.
        await notifier.notify(drillEvent(0, kind: .decision))
        _ = try await receiver.waitFor(.seconds(60)) { !$0.isEmpty }

        // One tick: announce, swap the release symlink (what the symlink executor does), announce.
        try FileIO.makeDirectories(dir + "/releases/v1")
        try FileIO.makeDirectories(dir + "/releases/v2")
        _ = symlink(dir + "/releases/v2", dir + "/current")
        let start = monotonicMs()
        await notifier.notify(drillEvent(1, kind: .rollbackStarted))
        let swap = try await ProcessRunner.run(
            ["ln", "-sfn", dir + "/releases/v1", dir + "/current.new"], timeout: .seconds(60))
        #expect(swap.succeeded)
        #expect(rename(dir + "/current.new", dir + "/current") == 0)
        await notifier.notify(drillEvent(2, kind: .rollbackFinished))
        let tick = monotonicMs() - start
        #expect(tick < 15_000, "the request hangs for 30 s; the tick took \(tick) ms while the receiver hangs")
        var target = [CChar](repeating: 0, count: 4096)
        let n = readlink(dir + "/current", &target, target.count - 1)
        #expect(
            n > 0
                && String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == dir + "/releases/v1")
        // Both notifications are safe in the spool, waiting behind the hanging request.
        await notifier.flush()
        #expect(notifier.spool.count(webhook: "hang") == 3)
        #expect(await notifier.pending() == 3)
        await notifier.stop()
        #expect(notifier.spool.count(webhook: "hang") == 3, "stopping keeps undelivered notifications spooled")
    }
}

/// The providers' own formats, delivered for real and checked by a receiver against their documentation
/// (`Tests/Servers/webhook_receiver.py`: PagerDuty's "Send an Alert Event", Microsoft's "Send Adaptive Cards using
/// an Incoming Webhook").
@Suite struct ProviderWebhookTests {
    static func incidentEvents() -> [Event] {
        let now = SystemTime.now()
        func e(
            _ kind: EventKind, _ severity: Severity, incident: String? = "INC-7", metric: String? = nil,
            extra: [String: String] = [:]
        ) -> Event {
            Event(
                kind: kind, at: now, message: "\(kind.rawValue) happened", severity: severity, incident: incident,
                trigger: incident == nil ? nil : "errors", metric: metric, fromVersion: "v2", toVersion: "v1",
                extra: extra)
        }
        return [
            e(.incidentOpened, .critical), e(.decision, .critical), e(.rollbackStarted, .high),
            e(.incidentClosed, .low, extra: ["outcome": "rolled_back"]),
            e(.sourceBlind, .high, incident: nil, metric: "error_rate"),
            e(.sourceRecovered, .low, incident: nil, metric: "error_rate"),
            e(.automationHalted, .critical, incident: nil), e(.automationRearmed, .medium, incident: nil),
        ]
    }

    @Test func pagerDutyGetsOneAlertPerIncidentTriggeredAcknowledgedAndResolved() async throws {
        let scene = try WebhookScene("pagerduty")
        defer { scene.remove() }
        let dir = scene.dir
        let key = "R0LLBACKDTESTKEY0123456789ABCDEF"
        try FileIO.writeAtomically(path: dir + "/pd.key", bytes: Array((key + "\n").utf8), mode: 0o600)
        let receiver = try await scene.receiver()
        var pd = webhook("pd", url: receiver.base + "/pagerduty/" + key, secretFile: "", format: .pagerduty)
        pd.secretFile = nil
        pd.routingKeyFile = dir + "/pd.key"
        let notifier = EventNotifier(
            config: notifyConfig([pd], identifier: "rbpd"), service: "shop", spoolDirectory: dir + "/spool",
            policy: fastPolicy(batch: 1), journalWriter: JournalWriter(target: .stderr))
        await notifier.start()
        for e in Self.incidentEvents() { await notifier.notify(e) }
        #expect(await notifier.drain(timeout: .seconds(60)))
        await notifier.stop()
        let got = try receiver.requests()
        for r in got { #expect(r.shape == nil, "\(r.shape ?? "") in \(r.body)") }
        func s(_ v: JSONValue?) -> String { if case let .string(x)? = v { x } else { "" } }
        let actions = got.map { "\(s($0.body["event_action"])) \(s($0.body["dedup_key"]))" }
        #expect(
            actions == [
                "trigger INC-7", "acknowledge INC-7", "resolve INC-7", "trigger shop/blind/error_rate",
                "resolve shop/blind/error_rate", "trigger shop/halted", "resolve shop/halted",
            ], "\(actions)")
        let trigger = try #require(got.first?.body)
        #expect(trigger["routing_key"] == .string(key))
        #expect(trigger["payload"]?["severity"] == .string("critical"))
        #expect(trigger["payload"]?["summary"] == .string("shop: incident_opened happened"))
        #expect(trigger["payload"]?["class"] == .string("incident_opened"))
        #expect(trigger["payload"]?["custom_details"]?["incident"]?["id"] == .string("INC-7"))
        // The key is added at delivery: the spooled body never holds it.
        let spooled = WebhookPayload.body(
            .pagerduty, Self.incidentEvents()[0], incident: nil, host: "h", service: "shop")
        #expect(!String(decoding: spooled, as: UTF8.self).contains(key))
    }

    @Test func teamsGetsAnAdaptiveCardForEveryEvent() async throws {
        let scene = try WebhookScene("teams")
        defer { scene.remove() }
        let receiver = try await scene.receiver()
        let notifier = EventNotifier(
            config: notifyConfig(
                [webhook("teams", url: receiver.base + "/teams", secretFile: scene.dir + "/secret", format: .teams)],
                identifier: "rbteams"),
            service: "shop", spoolDirectory: scene.dir + "/spool", policy: fastPolicy(),
            journalWriter: JournalWriter(target: .stderr))
        await notifier.start()
        let events = Self.incidentEvents()
        for e in events { await notifier.notify(e) }
        #expect(await notifier.drain(timeout: .seconds(60)))
        await notifier.stop()
        let got = try receiver.requests()
        #expect(got.count == events.count)
        for r in got { #expect(r.shape == nil, "\(r.shape ?? "") in \(r.body)") }
        let texts = Set(
            got.compactMap { r -> String? in
                guard case let .array(a)? = r.body["attachments"],
                    case let .array(body)? = a.first?["content"]?["body"],
                    body.count > 1, case let .string(t)? = body[1]["text"]
                else { return nil }
                return t
            })
        #expect(texts == Set(events.map(\.message)))
    }
}
