#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
@testable import RollbackCore
@testable import RollbackSystem
import TestSupport
import RollbackVersion

/// The libcurl client against a real asyncio server on loopback (Tests/Servers/fault_server.py).
@Suite struct HTTPClientTests {
    let client = HTTPClient.shared

    /// Options for a request; with no `timeout`, a patient one (the test does not judge how long a loopback answer
    /// takes, and on a loaded two-core runner it can take seconds). A test of timing names its timeout.
    func options(timeout: Interval? = nil, _ change: (inout HTTPOptions) -> Void = { _ in }) -> HTTPOptions {
        var o = patientHTTP()
        if let timeout {
            o.timeout = timeout
            o.connectTimeout = .seconds(1)
        }
        change(&o)
        return o
    }

    func expectFailure(_ r: Result<HTTPResponse, HTTPError>, sourceLocation: SourceLocation = #_sourceLocation)
        -> HTTPError?
    {
        switch r {
        case let .success(resp):
            Issue.record("expected a failure, got HTTP \(resp.status)", sourceLocation: sourceLocation)
            return nil
        case let .failure(e): return e
        }
    }

    @Test func getReturnsStatusBodyHeadersAndTiming() async throws {
        let s = try await SharedServers.fault()
        let resp = try await client.send(.get("\(s.base)/status/200", options: options())).get()
        #expect(resp.status == 200)
        #expect(resp.text == "status 200")
        #expect(resp.header("content-length") == "10")
        #expect(resp.timing.total > 0)
        #expect(resp.timing.total < 10, "timing is in seconds, not milliseconds")
        #expect(resp.isSuccess)
    }

    @Test func aServerErrorIsAResponseNotAnError() async throws {
        let s = try await SharedServers.fault()
        let resp = try await client.send(.get("\(s.base)/status/503", options: options())).get()
        #expect(resp.status == 503)
        #expect(!resp.isSuccess)
    }

    @Test func sendsMethodHeadersBodyAndBearerToken() async throws {
        let s = try await SharedServers.fault()
        let dir = try ScratchDir("http")
        defer { dir.remove() }
        let tokenFile = dir.path + "/token"
        try FileIO.writeAtomically(path: tokenFile, bytes: Array("s3cr3t-token\n".utf8))
        let req = HTTPRequest(
            method: "POST", url: "\(s.base)/echo", headers: [("X-Rollbackd-Test", "yes")],
            body: Array("{\"a\":1}".utf8), options: options { $0.bearerTokenFile = tokenFile })
        let resp = try await client.send(req).get()
        let echo = try JSONParser.parse(resp.text)
        #expect(echo["method"] == .string("POST"))
        #expect(echo["body"] == .string("{\"a\":1}"))
        #expect(echo["headers"]?["authorization"] == .string("Bearer s3cr3t-token"))
        #expect(echo["headers"]?["x-rollbackd-test"] == .string("yes"))
        #expect(echo["headers"]?["user-agent"] == .string("rollbackd/" + RollbackVersion.current))
        #expect(echo["headers"]?["expect"] == nil)
    }

    @Test func anUnreadableTokenFileNamesThePathNeverTheToken() async throws {
        let s = try await SharedServers.fault()
        let req = HTTPRequest(url: "\(s.base)/echo", options: options { $0.bearerTokenFile = "/nonexistent/token" })
        let e = try #require(expectFailure(await client.send(req)))
        #expect(
            e.description
                == "cannot use bearer token file /nonexistent/token for \(s.base)/echo: open /nonexistent/token: No such file or directory"
        )
        let dir = try ScratchDir("http")
        defer { dir.remove() }
        try FileIO.writeAtomically(path: dir.path + "/empty", bytes: Array(" \n".utf8))
        let e2 = try #require(
            expectFailure(
                await client.send(
                    HTTPRequest(url: "\(s.base)/echo", options: options { $0.bearerTokenFile = dir.path + "/empty" }))))
        #expect(e2.description.hasSuffix("the file is empty"))
    }

    @Test func refusedConnectionNamesTheURL() async throws {
        let url = "http://127.0.0.1:\(unusedPort())/metrics"
        let e = try #require(expectFailure(await client.send(.get(url, options: options()))))
        #expect(e.kind == .connectionRefused)
        #expect(e.description == "connection refused to \(url)")
    }

    @Test func aServerThatNeverAnswersTimesOutOnTime() async throws {
        let s = try await SharedServers.fault()
        let started = monotonicMs()
        let e = try #require(
            expectFailure(await client.send(.get("\(s.base)/hang", options: options(timeout: .ms(500))))))
        let elapsed = monotonicMs() - started
        #expect(e.description == "timeout after 500ms for \(s.base)/hang")
        #expect(elapsed >= 450 && elapsed < 10_000, "took \(elapsed) ms")
    }

    @Test func aDrippingServerIsCutOffAtTheTimeout() async throws {
        let s = try await SharedServers.fault()
        let started = monotonicMs()
        let e = try #require(
            expectFailure(
                await client.send(.get("\(s.base)/drip?bytes=1000&ms=50", options: options(timeout: .ms(700))))))
        let elapsed = monotonicMs() - started
        guard case let .timeout(t, bytes) = e.kind else { Issue.record("not a timeout: \(e)"); return }
        #expect(t == .ms(700))
        #expect(bytes < 20, "received \(bytes)")
        #expect(e.description.hasPrefix("timeout after 700ms for \(s.base)/drip?bytes=1000&ms=50"))
        #expect(elapsed < 10_000, "a 50 s drip must be cut off at the 700 ms timeout")
    }

    @Test func responsesOverTheCapAreRefused() async throws {
        let s = try await SharedServers.fault()
        // Declared length over the cap: refused at the headers.
        let e1 = try #require(
            expectFailure(await client.send(.get("\(s.base)/big?bytes=\(50 << 20)", options: options()))))
        #expect(e1.description == "response from \(s.base)/big?bytes=52428800 exceeds 16 MiB (maxBodyBytes)")
        // No declared length: cut off while streaming.
        let e2 = try #require(
            expectFailure(await client.send(.get("\(s.base)/big-chunked?bytes=\(50 << 20)", options: options()))))
        #expect(e2.kind == .bodyTooLarge(limit: 16 << 20))
        // A smaller configured cap.
        let e3 = try #require(
            expectFailure(
                await client.send(.get("\(s.base)/big-chunked?bytes=5000", options: options { $0.maxBodyBytes = 4096 }))
            ))
        #expect(e3.description == "response from \(s.base)/big-chunked?bytes=5000 exceeds 4 KiB (maxBodyBytes)")
        // Exactly at the cap is fine.
        let ok = try await client.send(.get("\(s.base)/big?bytes=4096", options: options { $0.maxBodyBytes = 4096 }))
            .get()
        #expect(ok.body.count == 4096)
    }

    @Test func garbageAndEmptyRepliesAreNamed() async throws {
        let s = try await SharedServers.fault()
        let e1 = try #require(expectFailure(await client.send(.get("\(s.base)/garbage", options: options()))))
        #expect(e1.description.hasPrefix("invalid HTTP response from \(s.base)/garbage"))
        let e2 = try #require(expectFailure(await client.send(.get("\(s.base)/close", options: options()))))
        #expect(
            e2.description == "empty reply from \(s.base)/close (the server closed the connection without a response)")
        let e3 = try #require(
            expectFailure(await client.send(.get("\(s.base)/hang-body", options: options(timeout: .ms(400))))))
        #expect(e3.kind == .timeout(.ms(400), bytesReceived: 0))
    }

    @Test func redirectsAreFollowedOnlyWhenConfigured() async throws {
        let s = try await SharedServers.fault()
        let notFollowed = try await client.send(.get("\(s.base)/redirect?to=/status/201", options: options())).get()
        #expect(notFollowed.status == 302)
        #expect(notFollowed.header("Location") == "/status/201")
        let followed = try await client.send(
            .get("\(s.base)/redirect?to=/status/201", options: options { $0.followRedirects = true })
        ).get()
        #expect(followed.status == 201)
        #expect(followed.header("location") == nil)
    }

    @Test func retryAfterIsReadable() async throws {
        let s = try await SharedServers.fault()
        let resp = try await client.send(.get("\(s.base)/retry-after", options: options())).get()
        #expect(resp.status == 429)
        #expect(resp.retryAfter == .seconds(7))
        // An HTTP date (RFC 9110 §10.2.3), read by libcurl (CURLINFO_RETRY_AFTER): about 120 s from now (the
        // date has whole seconds, and a second may pass between the server's clock read and libcurl's).
        let dated = try await client.send(.get("\(s.base)/retry-after?in=120", options: options())).get()
        #expect(dated.status == 429)
        let seconds = try #require(dated.retryAfter).milliseconds / 1000
        #expect((118...120).contains(seconds), "Retry-After \(dated.header("Retry-After") ?? "-") read as \(seconds) s")
    }

    @Test func manyRequestsAreInFlightAtOnce() async throws {
        let s = try await SharedServers.fault()
        let requests = (0..<200).map { _ in HTTPRequest.get("\(s.base)/slow?ms=400", options: options()) }
        let started = monotonicMs()
        let results = await client.sendAll(requests)
        let elapsed = monotonicMs() - started
        #expect(results.count == 200)
        #expect(results.allSatisfy { (try? $0.get().status) == 200 })
        // Sequentially this would take 80 s.
        #expect(elapsed < 20_000, "200 requests of 400 ms took \(elapsed) ms")
    }

    @Test func aBatchMixesOutcomesInOrder() async throws {
        let s = try await SharedServers.fault()
        let refused = "http://127.0.0.1:\(unusedPort())/x"
        let results = await client.sendAll([
            .get("\(s.base)/status/200", options: options()), .get(refused, options: options()),
            .get("\(s.base)/hang", options: options(timeout: .ms(300))),
            .get("\(s.base)/status/500", options: options()), .get("not a url", options: options()),
        ])
        #expect((try? results[0].get().status) == 200)
        #expect(results[1].failureDescription == "connection refused to \(refused)")
        // A loaded machine may not even finish the loopback connect within 300 ms; either way it is the timeout.
        #expect(
            ["timeout after 300ms for \(s.base)/hang", "connect timeout after 300ms to \(s.base)/hang"]
                .contains(results[2].failureDescription ?? ""), "\(results[2].failureDescription ?? "")")
        #expect((try? results[3].get().status) == 500)
        #expect(results[4].failureDescription?.hasPrefix("invalid URL not a url") == true)
    }

    @Test func cancellingTheCallerEndsItsTransfers() async throws {
        // A server of its own, so its count of /hang requests is this test's.
        let s = try await ServerProcess.python("fault_server.py")
        defer { s.stop() }
        let started = monotonicMs()
        let task = Task {
            await HTTPClient.shared.send(.get("\(s.base)/hang", options: options(timeout: .seconds(30))))
        }
        // Cancel once the transfer is under way: the server has the request.
        try await waitUntil("the /hang request to reach the server") {
            (try? await HTTPClient.shared.send(.get("\(s.base)/count/hang", options: options())).get().text) == "1"
        }
        task.cancel()
        let r = await task.value
        #expect(r.failureDescription == "request to \(s.base)/hang was cancelled")
        #expect(monotonicMs() - started < 15_000, "ended by the cancel, not by the 30 s timeout")
    }

    /// A streamed response (the etcd watch's way): chunks reach the callback while the transfer runs, the body cap
    /// does not apply, and the final response has no body of its own.
    @Test func aStreamedBodyArrivesChunkByChunkWhileTheTransferRuns() async throws {
        let s = try await SharedServers.fault()
        let got = Mutex<[UInt8]>([])
        var drip = HTTPRequest.get("\(s.base)/drip?bytes=20&ms=100", options: options())
        drip.onBodyChunk = { chunk in got.withLock { $0 += chunk } }
        let transfer = Task { await client.send(drip) }
        try await waitUntil("the first streamed byte") { got.withLock { !$0.isEmpty } }
        let early = got.withLock { $0.count }
        #expect(early < 20, "the first bytes came before the last was sent")
        let resp = try await transfer.value.get()
        #expect(resp.status == 200 && resp.body.isEmpty)
        #expect(got.withLock { $0 } == Array(repeating: UInt8(ascii: "#"), count: 20))

        got.withLock { $0 = [] }
        var big = HTTPRequest.get("\(s.base)/big?bytes=\(3 << 20)", options: options { $0.maxBodyBytes = 1024 })
        big.onBodyChunk = { chunk in got.withLock { $0 += chunk } }
        let whole = try await client.send(big).get()
        #expect(whole.status == 200 && whole.body.isEmpty)
        #expect(got.withLock { $0.count } == 3 << 20)
    }

    @Test func tlsIsVerifiedAndTheCAFileIsHonoured() async throws {
        let dir = try ScratchDir("http")
        defer { dir.remove() }
        let cert = dir.path + "/cert.pem", key = dir.path + "/key.pem"
        let gen = try await ProcessRunner.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1",
            ], timeout: .seconds(30))
        try #require(gen.succeeded, "openssl: \(gen.stderrText)")
        let server = try await ServerProcess.python("fault_server.py", ["--tls", cert, key])
        defer { server.stop() }
        let url = "https://127.0.0.1:\(server.port)/status/200"
        let e = try #require(expectFailure(await client.send(.get(url, options: options()))))
        guard case .tls = e.kind else { Issue.record("not a TLS error: \(e)"); return }
        #expect(e.description.hasPrefix("TLS failure for \(url): "))
        let ok = try await client.send(.get(url, options: options { $0.caFile = cert })).get()
        #expect(ok.status == 200)
    }

    @Test func userinfoIsRedactedFromMessages() async throws {
        #expect(HTTPError.redact("http://user:pw@host:80/p?q=a@b") == "http://***@host:80/p?q=a@b")
        #expect(HTTPError.redact("http://host/p@x") == "http://host/p@x")
        #expect(HTTPError.redact("https://a@b:p@host#f@g") == "https://***@host#f@g")
        #expect(HTTPError.redact("http://ü:ß@hôst/ä@") == "http://***@hôst/ä@")
        #expect(HTTPError.redact("user:pw@host") == "user:pw@host")
        let port = unusedPort()
        let e = try #require(
            expectFailure(await client.send(.get("http://user:pw@127.0.0.1:\(port)/", options: options()))))
        #expect(e.description == "connection refused to http://***@127.0.0.1:\(port)/")
    }

    @Test func thousandsOfTransfersLeakNoConnections() async throws {
        // A server of its own, so connections of tests running in parallel do not count.
        let s = try await ServerProcess.python("fault_server.py")
        defer { s.stop() }
        do {
            let c = HTTPClient(maxConnections: 8)
            for _ in 0..<20 {
                let results = await c.sendAll(
                    (0..<100).map { i in
                        .get(i % 10 == 0 ? "http://127.0.0.1:\(unusedPort())/" : "\(s.base)/status/200")
                    })
                #expect(results.filter { (try? $0.get().status) == 200 }.count == 90)
            }
            // Idle connections are kept for reuse; libcurl prunes to the limit only as transfers finish, so up to a
            // batch's worth may stay open, but never more: 20 ticks do not pile up connections.
            let cached = establishedConnections(toPort: s.port)
            #expect(cached > 0 && cached <= 90, "\(cached) connections cached")
        }
        // The client is gone: its multi handle and cached connections with it.
        // Closing is asynchronous to this task: wait for it (generously), then check.
        try? await waitUntil("the released client's connections to close") {
            establishedConnections(toPort: s.port) == 0
        }
        let left = establishedConnections(toPort: s.port)
        #expect(left == 0, "\(left) connections still open after the client was released")
    }
}

/// This process's TCP connections in ESTABLISHED state to loopback port `port` (from /proc/net/tcp, keeping only
/// sockets found in /proc/self/fd: other processes on the machine may talk to a port we reuse).
func establishedConnections(toPort port: Int) -> Int {
    var mine = Set<Substring>()
    if let d = opendir("/proc/self/fd") {
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) {
                String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            var buf = [CChar](repeating: 0, count: 64)
            let n = readlink("/proc/self/fd/" + name, &buf, 63)
            guard n > 0 else { continue }
            let link = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if link.hasPrefix("socket:[") { mine.insert(Substring(link.dropFirst(8).dropLast())) }
        }
        closedir(d)
    }
    guard let bytes = try? FileIO.readAll(path: "/proc/net/tcp") else { return -1 }
    var n = 0
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n").dropFirst() {
        let f = line.split(separator: " ")
        guard f.count > 9, let colon = f[2].lastIndex(of: ":"),
            let remote = Int(f[2][f[2].index(after: colon)...], radix: 16)
        else { continue }
        if remote == port && f[3] == "01" && mine.contains(f[9]) { n += 1 }
    }
    return n
}

extension Result where Success == HTTPResponse, Failure == HTTPError {
    var failureDescription: String? {
        if case let .failure(e) = self { return e.description }
        return nil
    }
}
