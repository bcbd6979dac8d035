#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
@testable import RollbackSystem
import Testing
import TestSupport

@Suite("webhook spool")
struct SpoolUnitTests {
    @Test func writesLoadsInOrderAndSetsDamageAside() throws {
        let scratch = try ScratchDir("rbspool")
        defer { scratch.remove() }
        let dir = scratch.path
        let spool = WebhookSpool(directory: dir)
        let t = Timestamp(iso8601: "2026-11-22T13:00:00Z")!
        let messages = (0..<5).map { i in
            WebhookSpool.newMessage(
                webhook: "ops/pager duty", type: "rollbackd.decision", severity: .high,
                createdAt: t + .seconds(Int64(i % 2)), body: Array(#"{"n":\#(i),"s":"é\n"}"#.utf8),
                incident: i == 0 ? nil : "inc-\(i)")
        }
        try spool.write(messages)
        #expect(spool.spooledWebhooks() == ["ops/pager duty"])
        #expect(spool.path(webhook: "ops/pager duty") == dir + "/ops%2Fpager%20duty")
        // A torn temp file (crash before the rename) and a damaged file.
        try FileIO.writeAtomically(path: spool.path(webhook: "ops/pager duty") + "/x.json.tmp.99", bytes: [1, 2])
        try FileIO.writeAtomically(
            path: spool.path(webhook: "ops/pager duty") + "/0000000000000-000000000-bad.json", bytes: Array("{".utf8))
        let (loaded, damaged) = spool.load(webhook: "ops/pager duty")
        #expect(loaded.map(\.id) == [0, 2, 4, 1, 3].map { messages[$0].id }, "oldest first, then in order of creation")
        #expect(loaded.first == messages[0])
        #expect(damaged.count == 1)
        #expect(FileIO.exists(spool.path(webhook: "ops/pager duty") + "/0000000000000-000000000-bad.json.corrupt"))
        #expect(!FileIO.exists(spool.path(webhook: "ops/pager duty") + "/x.json.tmp.99"))
        spool.remove(loaded[0])
        #expect(spool.count(webhook: "ops/pager duty") == 4)
    }

    @Test func spoolFilesAreVersionedJSON() throws {
        let m = WebhookSpool.newMessage(
            webhook: "ops", type: "rollbackd.decision", severity: .critical,
            createdAt: Timestamp(millisecondsSinceEpoch: 1_795_355_978_000), body: Array("{}".utf8),
            incident: "inc-1")
        let j = try JSONParser.parse(bytes: m.fileContent)
        #expect(j["spool"] == .number(1))
        #expect(j["id"] == .string(m.id))
        #expect(j["created"] == .string("2026-11-22T13:59:38.000Z"))
        #expect(j["body"] == .string("{}"))
        #expect(SpoolMessage.parse(m.fileContent, fileName: m.fileName) == m)
        #expect(SpoolMessage.parse(Array(#"{"spool":2}"#.utf8), fileName: "x") == nil)
    }
}

@Suite("delivery that loses nothing")
struct SpoolFaultTests {
    @Test func receiverDownWhileAThousandEventsAreProducedThenUp() async throws {
        try await Journald.ensure()
        let scene = try WebhookScene("rbdown")
        defer { scene.remove() }
        let (dir, secret) = (scene.dir, scene.secret)
        let port = unusedPort()
        let notifier = EventNotifier(
            config: notifyConfig(
                [webhook("ops", url: "http://127.0.0.1:\(port)/ok", secretFile: dir + "/secret")],
                identifier: uniqueIdentifier("rbdown")),
            service: "checkout", spoolDirectory: dir + "/spool", policy: fastPolicy(batch: 16),
            journalWriter: JournalWriter(target: .journal))
        await notifier.start()
        var latencies: [Int64] = []
        for i in 0..<1000 {
            let t0 = monotonicMs()
            // high, not critical: journald syncs its files after every PRIORITY<=2 entry, which no real burst
            // of 1,000 critical events would meet, and which would measure the journal, not the spool.
            await notifier.notify(drillEvent(i, severity: .high))
            latencies.append(monotonicMs() - t0)
        }
        latencies.sort()
        await notifier.flush()
        #expect(
            notifier.spool.count(webhook: "ops") == 1000, "every notification is on disk while the receiver is down")
        let p99 = latencies[989]
        #expect(
            latencies[999] < 30_000, "notify waits at most enqueueWait (1 s) for the disk; max \(latencies[999]) ms")
        print("notify latency with receiver down: p50 \(latencies[500]) ms, p99 \(p99) ms, max \(latencies[999]) ms")

        let receiver = try await Receiver.start(secret: secret, log: dir + "/received.jsonl", port: port)
        let start = monotonicMs()
        #expect(await notifier.drain(timeout: .seconds(60)))
        print("1000 spooled notifications delivered in \(monotonicMs() - start) ms after the receiver came back")
        await notifier.stop()
        let got = try receiver.requests()
        #expect(got.allSatisfy { $0.verified })
        let unique = Dictionary(got.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(unique.count == 1000, "each webhook-id once after de-duplication (\(got.count) requests)")
        #expect(Set(drillSeqs(Array(unique.values))) == Set(0..<1000), "none lost")
        #expect(notifier.spool.count(webhook: "ops") == 0)
    }

    @Test func killMinusNineMidDeliveryThenRestartDeliversTheSpool() async throws {
        try await Journald.ensure()
        let scene = try WebhookScene("rbkill")
        defer { scene.remove() }
        let dir = scene.dir
        let receiver = try await scene.receiver()
        let config = try writeThresholds(
            dir: dir,
            webhooks: [
                webhookJSON(name: "ops", url: receiver.base + "/hold/20", secretFile: dir + "/secret")
            ], identifier: uniqueIdentifier("rbkill"))
        let total = 150
        let drill = [
            "notify-drill", "--config", config, "--state-dir", dir + "/state", "--journal", "journal",
            "--batch-size", "1", "--initial-backoff", "20ms", "--max-backoff", "200ms",
        ]

        // First run: produce everything, deliver 20, then the receiver holds the next delivery until the test lets
        // it go: the SIGKILL lands mid-delivery however busy the machine is.
        let out = dir + "/drill.out"
        let first = try ChildProcess(
            [RepoPaths.binary] + drill + ["--count", String(total), "--wait", "60s"], log: out)
        let pid = first.pid
        defer { first.stop() }
        // Every event is produced (and so journaled and spooled) before the kill; delivery is then under way.
        try? await waitUntil("the drill to enqueue \(total) events") {
            (TestFiles.read(out) ?? "").contains("ENQUEUED \(total)")
        }
        let before = try await receiver.waitFor(.seconds(60)) { $0.count > 20 }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(status & 0x7f == SIGKILL, "killed mid-delivery")
        try #require(before.count >= 20)
        try #require(String(decoding: try FileIO.readAll(path: out), as: UTF8.self).contains("ENQUEUED \(total)"))
        let spooled = WebhookSpool(directory: EventNotifier.spoolDirectory(stateDirectory: dir + "/state")).count(
            webhook: "ops")
        let deliveredBeforeKill = Set(try receiver.requests().map(\.id)).count
        #expect(spooled > 0 && deliveredBeforeKill < total, "the kill left work in the spool (\(spooled) spooled)")
        print("kill -9 after \(deliveredBeforeKill) of \(total) delivered; \(spooled) left in the spool")

        // Restart with nothing new: the spool is resumed and drained.
        receiver.release()
        let second = try await runRollbackd(drill + ["--count", "0", "--wait", "60s"], timeout: .seconds(90))
        #expect(second.succeeded, "\(second.stdoutText) \(second.stderrText)")
        #expect(second.stdoutText.contains("PENDING 0"))
        let got = try receiver.requests()
        let unique = Dictionary(got.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(Set(drillSeqs(Array(unique.values))) == Set(0..<total), "every event delivered across the crash")
        #expect(unique.count == total, "each webhook-id once after de-duplication")
        #expect(got.allSatisfy { $0.verified })
        #expect(
            WebhookSpool(directory: EventNotifier.spoolDirectory(stateDirectory: dir + "/state")).count(webhook: "ops")
                == 0)
    }
}
