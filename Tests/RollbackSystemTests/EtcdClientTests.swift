#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import RollbackCore
@testable import RollbackSystem
import TestSupport

/// The etcd client against real etcd 3.4 clusters on loopback (TestSupport's EtcdCluster): a shared 3-member
/// cluster for the tests that only read and write (each under its own key prefix), and clusters of their own for
/// the tests that kill members or need TLS.
@Suite(.serialized, .enabled(if: EtcdCluster.runnable, "\(EtcdCluster.missing)"))
struct EtcdClientTests {
    /// A client of every member, patient enough for a loaded two-core machine (a test of timing sets its own).
    /// Attempts of 2 s: a write held by a member whose leader was just killed is retried after 2 s instead of
    /// etcd's 7 s (and a slow answer on a loaded machine is only tried again).
    static func client(_ cluster: EtcdCluster, timeout: Interval = .seconds(30)) -> EtcdClient {
        EtcdClient(
            endpoints: cluster.endpoints, tls: cluster.tls, requestTimeout: timeout,
            attemptTimeout: min(timeout, .seconds(2)))
    }

    /// Collects a watch's events and errors.
    final class Seen: Sendable {
        let events = Mutex<[EtcdEvent]>([])
        let errors = Mutex<[EtcdError]>([])
        var all: [EtcdEvent] { events.withLock { $0 } }
        var failures: [EtcdError] { errors.withLock { $0 } }

        func watch(_ client: EtcdClient, _ prefix: String, from revision: Int64, healthCheck: Interval? = .seconds(5))
            -> EtcdWatch
        {
            client.watch(
                prefix: prefix, fromRevision: revision, healthCheck: healthCheck,
                onError: { e in self.errors.withLock { $0.append(e) } },
                onEvent: { batch, _ in self.events.withLock { $0.append(contentsOf: batch) } })
        }
    }

    // TTLs of several seconds: early in a full `make test` a request can take seconds on the loaded machine, and a
    // lease must not expire between two of the test's own requests.
    @Test func aLeaseIsGrantedKeptAliveAndRevoked() async throws {
        let etcd = Self.client(try await EtcdCluster.shared())
        // etcd raises a TTL below its minimum (1.5 × the election timeout of 1 s, rounded up) and says so.
        let short = try await etcd.grantLease(ttlSeconds: 1)
        #expect(short.ttl == 2)
        try await etcd.revoke(lease: short.id)
        let lease = try await etcd.grantLease(ttlSeconds: 6)
        #expect(lease.id != 0 && lease.ttl == 6)
        try await etcd.put("/lease-alive/host", "up", lease: lease.id)
        // Keep it alive for well past its TTL (a keepalive every second); the key must stay.
        let until = monotonicMs() + Int64(lease.ttl) * 1000 + 2000
        while monotonicMs() < until {
            let ttl = try await etcd.keepAlive(lease: lease.id)
            #expect(ttl > 0 && ttl <= lease.ttl)
            try await Task.sleep(for: .seconds(1))
        }
        let kv = try #require(try await etcd.get("/lease-alive/host"), "the key vanished although its lease was kept")
        #expect(kv.text == "up" && kv.lease == lease.id)
        // Revoked: the key goes at once, and the lease cannot be renewed.
        try await etcd.revoke(lease: lease.id)
        #expect(try await etcd.get("/lease-alive/host") == nil)
        do {
            _ = try await etcd.keepAlive(lease: lease.id)
            Issue.record("a revoked lease was renewed")
        } catch {
            #expect(error.kind == .leaseExpired(lease.id))
            #expect(error.description.contains("lease \(lease.id) has expired or was revoked"))
        }
        try await etcd.revoke(lease: lease.id) // already gone: no error
    }

    @Test func aKeyUnderALeaseVanishesWhenTheLeaseExpires() async throws {
        let etcd = Self.client(try await EtcdCluster.shared())
        let asked = monotonicMs()
        let lease = try await etcd.grantLease(ttlSeconds: 4)
        try await etcd.put("/lease-expiry/host", "up", lease: lease.id) // fails if the lease were gone already
        try await waitUntil("the key under lease \(lease.id) to vanish") {
            try await etcd.get("/lease-expiry/host") == nil
        }
        #expect(monotonicMs() - asked >= Int64(lease.ttl) * 1000 - 100, "gone before its TTL of \(lease.ttl) s")
    }

    @Test func putIfAbsentSucceedsForExactlyOneOfTwoCallers() async throws {
        let cluster = try await EtcdCluster.shared()
        let a = Self.client(cluster), b = Self.client(cluster)
        func claim(_ client: EtcdClient, _ name: String) async throws -> EtcdTxnResult {
            try await client.txn(
                compare: [.createRevision("/claim/leader", equals: 0)], success: [.put("/claim/leader", name)],
                failure: [.get("/claim/leader")])
        }
        async let first = claim(a, "a")
        async let second = claim(b, "b")
        let results = try await [first, second]
        #expect(results.filter(\.succeeded).count == 1)
        let winner = results[0].succeeded ? "a" : "b"
        let loser = try #require(results.first { !$0.succeeded })
        // The loser's failure branch read the key: the winner holds it.
        #expect(loser.ranges.count == 1 && loser.ranges[0].map(\.text) == [winner])
        #expect(try await a.get("/claim/leader")?.text == winner)
        // A third try, after the fact, fails the same way.
        #expect(!(try await claim(a, "c")).succeeded)
    }

    @Test func aFencedWriteIsRefusedOnceTheLeaderKeyChanged() async throws {
        let etcd = Self.client(try await EtcdCluster.shared())
        let rev = try await etcd.put("/fence/leader", "host-1")
        let decide = { (decision: String, holder: String) async throws -> EtcdTxnResult in
            try await etcd.txn(
                compare: [.value("/fence/leader", equals: holder), .modRevision("/fence/leader", equals: rev)],
                success: [.put("/fence/decision", decision)])
        }
        #expect(try await decide("rollback v2 to v1", "host-1").succeeded)
        try await etcd.put("/fence/leader", "host-2") // a new leader
        let refused = try await decide("rollback v3 to v2", "host-1")
        #expect(!refused.succeeded && refused.ranges.isEmpty)
        #expect(try await etcd.get("/fence/decision")?.text == "rollback v2 to v1")
        // The lease compare fences too: the key is bound to no lease.
        let byLease = try await etcd.txn(
            compare: [.leaseOf("/fence/leader", equals: 42)], success: [.delete("/fence/decision")])
        #expect(!byLease.succeeded)
    }

    @Test func aPrefixRangeReturnsExactlyThePrefix() async throws {
        let etcd = Self.client(try await EtcdCluster.shared())
        for key in ["/range/p/a", "/range/p/b", "/range/p/c/d", "/range/p", "/range/p0", "/range/o/x", "/range/q"] {
            try await etcd.put(key, "v " + key)
        }
        let (kvs, revision) = try await etcd.getPrefix("/range/p/")
        #expect(kvs.map(\.key) == ["/range/p/a", "/range/p/b", "/range/p/c/d"])
        #expect(kvs.map(\.text) == ["v /range/p/a", "v /range/p/b", "v /range/p/c/d"])
        #expect(revision >= kvs.map(\.modRevision).max() ?? 0)
        #expect(try await etcd.getPrefix("/range/none/").kvs.isEmpty)
        let deleted = try await etcd.txn(compare: [], success: [.deletePrefix("/range/p/"), .getPrefix("/range/")])
        #expect(deleted.succeeded)
        #expect(
            deleted.ranges.count == 2
                && deleted.ranges[1].map(\.key) == ["/range/o/x", "/range/p", "/range/p0", "/range/q"])
        // The range end: last byte plus one, trailing 0xff bytes dropped.
        #expect(EtcdJSON.rangeEnd("/a/") == Array("/a0".utf8))
        #expect(EtcdJSON.rangeEnd("a\u{7f}") == [0x61, 0x80])
        #expect(EtcdJSON.rangeEnd("") == [0])
    }

    @Test func int64StringsAndOmittedFieldsDecode() async throws {
        let etcd = Self.client(try await EtcdCluster.shared())
        // Absent key: the gateway leaves out kvs and count.
        #expect(try await etcd.get("/decode/absent") == nil)
        let r1 = try await etcd.put("/decode/k", [0, 1, 2, 0xff, 0xfe])
        let r2 = try await etcd.put("/decode/k", "second")
        #expect(r1 > 0 && r2 == r1 + 1)
        let kv = try #require(try await etcd.get("/decode/k"))
        #expect(kv.createRevision == r1 && kv.modRevision == r2 && kv.version == 2 && kv.lease == 0)
        #expect(try await etcd.put("/decode/bytes", [0, 1, 2, 0xff, 0xfe]) > r2)
        #expect(try await etcd.get("/decode/bytes")?.value == [0, 1, 2, 0xff, 0xfe])
        // A failed transaction: `succeeded: false` is omitted; the revision is still a string.
        let failed = try await etcd.txn(compare: [.version("/decode/k", equals: 1)], success: [.delete("/decode/k")])
        #expect(!failed.succeeded && failed.revision >= r2 + 1)
        // The gateway's own refusal is named with its endpoint, path and gRPC code.
        let bad = EtcdClient(endpoints: [etcd.endpoints[0]], requestTimeout: .seconds(20))
        do {
            _ = try await bad.keepAlive(lease: 0)
            Issue.record("keepalive of lease 0 succeeded")
        } catch {
            #expect(error.description.contains(etcd.endpoints[0] + "/v3/lease/keepalive"), "\(error)")
        }
        // Concatenated objects split whatever the chunking, braces inside strings included.
        let stream = Array(#"{"result":{"a":"}{\"x"}}{"result":{}}  {"b":[{"c":1}]}"#.utf8)
        var splitter = JSONObjectSplitter()
        var objects: [[UInt8]] = []
        for byte in stream { objects += splitter.feed([byte]) }
        #expect(
            objects.map { String(decoding: $0, as: UTF8.self) } == [
                #"{"result":{"a":"}{\"x"}}"#, #"{"result":{}}"#, #"{"b":[{"c":1}]}"#,
            ])
        #expect(splitter.pending == 0)
    }

    @Test func aWatchDeliversPutsAndDeletesInOrder() async throws {
        let etcd = Self.client(try await EtcdCluster.shared())
        let start = try await etcd.put("/watch-order/start", "")
        let seen = Seen()
        let watch = seen.watch(etcd, "/watch-order/w/", from: start + 1)
        defer { watch.cancel() }
        try await etcd.put("/watch-order/w/a", "1")
        try await etcd.put("/watch-order/w/b", "2")
        try await etcd.put("/watch-order/elsewhere", "x")
        try await etcd.delete("/watch-order/w/a")
        _ = try await etcd.txn(compare: [], success: [.put("/watch-order/w/c", "3"), .put("/watch-order/w/b", "4")])
        try await waitUntil("5 watch events", explain: { "seen: \(seen.all)" }) { seen.all.count >= 5 }
        let events = seen.all
        #expect(events.map(\.kind) == [.put, .put, .delete, .put, .put])
        #expect(
            events.map(\.kv.key) == [
                "/watch-order/w/a", "/watch-order/w/b", "/watch-order/w/a", "/watch-order/w/c", "/watch-order/w/b",
            ])
        #expect(events.map(\.kv.text) == ["1", "2", "", "3", "4"])
        #expect(events[3].kv.modRevision == events[4].kv.modRevision, "one transaction, one revision")
        #expect(watch.lastRevision == events[4].kv.modRevision)
        await watch.cancelAndWait()
        #expect(seen.failures.isEmpty, "\(seen.failures)")
    }

    @Test func aWatchOnACompactedRevisionSaysSo() async throws {
        let etcd = Self.client(try await EtcdCluster.shared())
        try await etcd.put("/compact/k", "1")
        let rev = try await etcd.put("/compact/k", "2")
        _ = try await etcd.call("/v3/kv/compaction", .object([("revision", EtcdJSON.int64(rev))])) {
            (_: EtcdReply) throws(EtcdParseError) in ()
        }
        let seen = Seen()
        let watch = seen.watch(etcd, "/compact/", from: rev - 1)
        defer { watch.cancel() }
        try await waitUntil("the watch to report the compaction") { !seen.failures.isEmpty }
        #expect(seen.failures.first?.kind == .compacted(compactRevision: rev))
        #expect(seen.all.isEmpty)
    }

    @Test(.timeLimit(.minutes(3)))
    func aWatchResumesAfterItsMemberIsKilledWithNoEventLostOrRepeated() async throws {
        let cluster = try await EtcdCluster.start()
        defer { cluster.shutdown() }
        let watcher = Self.client(cluster) // its stream starts on member 0, the first endpoint
        let writer = Self.client(cluster)
        let start = try await writer.put("/resume/start", "")
        let seen = Seen()
        let watch = seen.watch(watcher, "/resume/k/", from: start + 1)
        defer { watch.cancel() }
        for i in 0..<100 {
            if i == 30 {
                try await waitUntil("the watch to see the first 30 puts") { seen.all.count == 30 }
                await cluster.kill(member: 0)
            }
            try await writer.put("/resume/k/\(i)", "\(i)")
        }
        try await waitUntil("all 100 puts through the watch", explain: { "seen \(seen.all.count): \(seen.failures)" }) {
            seen.all.count >= 100
        }
        let keys = seen.all.map(\.kv.key)
        #expect(keys == (0..<100).map { "/resume/k/\($0)" }, "each put exactly once, in order")
        let revisions = seen.all.map(\.kv.modRevision)
        #expect(zip(revisions, revisions.dropFirst()).allSatisfy { $0 < $1 })
        // The break was seen on member 0 and the watch went on elsewhere.
        #expect(
            seen.failures.contains { $0.endpoint == cluster.endpoint(0) && $0.description.contains("stream broke") },
            "\(seen.failures)")
        #expect(!seen.failures.contains { if case .compacted = $0.kind { true } else { false } })
    }

    @Test(.timeLimit(.minutes(3)))
    func aWatchMovesOffAMemberThatHangs() async throws {
        let cluster = try await EtcdCluster.start()
        defer { cluster.shutdown() }
        let watcher = Self.client(cluster) // its stream starts on member 0
        let writer = EtcdClient(
            endpoints: Array(cluster.endpoints.dropFirst()), requestTimeout: .seconds(30), attemptTimeout: .seconds(2))
        let start = try await writer.put("/hang/start", "")
        let seen = Seen()
        let watch = seen.watch(watcher, "/hang/k/", from: start + 1, healthCheck: .seconds(1))
        defer { watch.cancel() }
        try await writer.put("/hang/k/0", "0")
        try await waitUntil("the watch to see the first put") { seen.all.count == 1 }
        // Member 0 stops answering but keeps its connections: only the health check can tell.
        cluster.pause(member: 0)
        defer { cluster.resume(member: 0) }
        for i in 1..<20 { try await writer.put("/hang/k/\(i)", "\(i)") }
        try await waitUntil("the 19 puts made while member 0 hangs", explain: { "\(seen.all.count): \(seen.failures)" })
        {
            seen.all.count >= 20
        }
        #expect(seen.all.map(\.kv.key) == (0..<20).map { "/hang/k/\($0)" })
        #expect(
            seen.failures.contains { $0.endpoint == cluster.endpoint(0) && $0.description.contains("health check") },
            "\(seen.failures)")
    }

    @Test(.timeLimit(.minutes(3)))
    func requestsSucceedWithOneMemberDownAndFailClearlyWithAllDown() async throws {
        let cluster = try await EtcdCluster.start()
        defer { cluster.shutdown() }
        let etcd = Self.client(cluster)
        try await etcd.put("/down/before", "1")
        // Member 0, the first endpoint, dies: every kind of request still succeeds through the others.
        await cluster.kill(member: 0)
        try await etcd.put("/down/during", "2")
        #expect(try await etcd.get("/down/before")?.text == "1")
        let lease = try await etcd.grantLease(ttlSeconds: 10)
        #expect(try await etcd.keepAlive(lease: lease.id) > 0)
        #expect(
            try await etcd.txn(compare: [.createRevision("/down/x", equals: 0)], success: [.put("/down/x", "3")])
                .succeeded)
        #expect(try await etcd.getPrefix("/down/").kvs.count == 3)
        // Back on its data directory and ports, it has caught up.
        try await cluster.restart(member: 0)
        let alone = EtcdClient(endpoints: [cluster.endpoint(0)], requestTimeout: .seconds(20))
        try await waitUntil("the restarted member to serve the keys written while it was down") {
            (try? await alone.get("/down/during"))?.text == "2"
        }
        // Every member down: a clear error naming every endpoint, within the deadline.
        for i in cluster.members.indices { await cluster.kill(member: i) }
        let deadline = Interval.seconds(2)
        let quick = Self.client(cluster, timeout: deadline)
        let began = monotonicMs()
        do {
            try await quick.put("/down/after", "4")
            Issue.record("a put succeeded with every member down")
        } catch {
            let took = monotonicMs() - began
            #expect(took < deadline.milliseconds + 2000, "took \(took) ms")
            guard case let .unreachable(failures, d) = error.kind else {
                Issue.record("not unreachable: \(error)")
                return
            }
            #expect(d == deadline && failures.map(\.endpoint) == cluster.endpoints)
            #expect(failures.allSatisfy { $0.reason.contains("connection refused") }, "\(failures)")
            for e in cluster.endpoints { #expect(error.description.contains(e)) }
            #expect(error.description.hasPrefix("etcd unreachable for /v3/kv/put within 2s"), "\(error)")
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func tlsWithAClientCertificateWorksAndWithoutOneIsRefused() async throws {
        let cluster = try await EtcdCluster.start(members: 1, tls: true)
        defer { cluster.shutdown() }
        let tls = try #require(cluster.tls)
        #expect(cluster.endpoints[0].hasPrefix("https://127.0.0.1:"))
        let etcd = Self.client(cluster)
        try await etcd.put("/tls/k", "secret")
        #expect(try await etcd.get("/tls/k")?.text == "secret")
        // Trusting the CA but showing no certificate: the member refuses the connection.
        let anonymous = EtcdClient(
            endpoints: cluster.endpoints, tls: EtcdTLS(caFile: tls.caFile), requestTimeout: .seconds(3))
        do {
            _ = try await anonymous.get("/tls/k")
            Issue.record("a client without a certificate was served")
        } catch {
            guard case let .unreachable(failures, _) = error.kind else {
                Issue.record("not a connection refusal: \(error)")
                return
            }
            #expect(failures.count == 1 && failures[0].reason.contains("certificate"), "\(error)")
        }
    }
}
