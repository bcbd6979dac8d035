#if canImport(Glibc)
import Glibc
#endif
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

/// A real nginx (Debian's) under a temporary prefix on a free loopback port; the system nginx config is never read.
struct NginxInstance {
    var prefix: String
    var port: Int
    var binary: String
    var conf: String { prefix + "/nginx.conf" }
    var upstreamFile: String { prefix + "/upstream.conf" }
    var pidFile: String { prefix + "/nginx.pid" }
    var base: [String] { [binary, "-p", prefix + "/", "-c", conf, "-e", prefix + "/error.log"] }

    static func start(dir: ScratchDir, upstream: String, reaper: Reaper) async throws -> NginxInstance {
        guard let binary = program(named: "nginx") else {
            throw TestFailure("nginx is not installed (make test-deps installs Debian's nginx)")
        }
        let prefix = dir.mkdirs("nginx")
        dir.mkdirs("nginx/tmp")
        try FileIO.writeAtomically(path: prefix + "/upstream.conf", bytes: Array(upstream.utf8), mode: 0o644)
        var lastError = ""
        for _ in 0..<3 {
            let n = NginxInstance(prefix: prefix, port: unusedPort(), binary: binary)
            let conf = """
                \(geteuid() == 0 ? "user root;" : "")
                worker_processes 1;
                pid \(n.pidFile);
                error_log \(prefix)/error.log warn;
                events { worker_connections 512; }
                http {
                    access_log off;
                    client_body_temp_path \(prefix)/tmp/body;
                    proxy_temp_path \(prefix)/tmp/proxy;
                    fastcgi_temp_path \(prefix)/tmp/fastcgi;
                    uwsgi_temp_path \(prefix)/tmp/uwsgi;
                    scgi_temp_path \(prefix)/tmp/scgi;
                    include \(n.upstreamFile);
                    server {
                        listen 127.0.0.1:\(n.port);
                        location / { proxy_pass http://app; }
                    }
                }
                """
            try FileIO.writeAtomically(path: n.conf, bytes: Array(conf.utf8), mode: 0o644)
            let r = try await ProcessRunner.run(n.base, timeout: .seconds(20))
            if r.succeeded {
                reaper.add(pidFile: n.pidFile)
                return n
            }
            lastError = r.stderrText
            if !lastError.contains("Address already in use") { break }
        }
        throw TestFailure("nginx did not start: \(lastError)")
    }
}

/// A real HAProxy (Debian's) with a runtime API socket, on a free loopback port.
struct HAProxyInstance {
    var dir: String
    var port: Int
    var socket: String { dir + "/admin.sock" }

    /// `serverOptions` follow each `server` line (e.g. `weight 100`).
    static func start(dir: ScratchDir, servers: [(String, Int)], serverOptions: String = "", reaper: Reaper)
        async throws -> HAProxyInstance
    {
        guard let binary = program(named: "haproxy") else {
            throw TestFailure("haproxy is not installed (make test-deps installs Debian's haproxy)")
        }
        let d = dir.mkdirs("haproxy")
        var lastError = ""
        for _ in 0..<3 {
            let h = HAProxyInstance(dir: d, port: unusedPort())
            let cfg = """
                global
                    stats socket \(h.socket) mode 600 level admin
                defaults
                    mode http
                    timeout connect 60s
                    timeout client 60s
                    timeout server 60s
                frontend fe
                    bind 127.0.0.1:\(h.port)
                    default_backend app
                backend app
                    balance roundrobin
                \(servers.map { "    server \($0.0) 127.0.0.1:\($0.1) \(serverOptions)" }.joined(separator: "\n"))

                """
            try FileIO.writeAtomically(path: d + "/haproxy.cfg", bytes: Array(cfg.utf8), mode: 0o644)
            let r = try await ProcessRunner.run(
                [binary, "-D", "-f", d + "/haproxy.cfg", "-p", d + "/haproxy.pid"], timeout: .seconds(20))
            if r.succeeded {
                reaper.add(pidFile: d + "/haproxy.pid")
                try await waitUntil("haproxy's runtime API socket \(h.socket)") { FileIO.exists(h.socket) }
                return h
            }
            lastError = r.stderrText
            if !lastError.contains("ddress already in use") && !lastError.contains("cannot bind") { break }
        }
        throw TestFailure("haproxy did not start: \(lastError)")
    }
}

@Suite struct ExecutorNginxTests {
    /// Waits until `new` has answered 10 requests while `old` answered none (nginx's old workers are done), and
    /// the two have answered `total` requests between them.
    static func waitForTakeover(by new: ServerProcess, from old: ServerProcess, total: Int) async throws {
        var oldCount = try await Fixture.count(old)
        var newMark = try await Fixture.count(new)
        try await waitUntil("10 answers in a row from \(new.hostPort) with \(old.hostPort) silent, \(total) in all") {
            let o = try await Fixture.count(old), n = try await Fixture.count(new)
            if o != oldCount { oldCount = o; newMark = n }
            return n - newMark >= 10 && o + n >= total
        }
    }

    @Test func switchesColourUnderLoadWithoutAFailedRequest() async throws {
        let dir = try ScratchDir("nginx")
        defer { dir.remove() }
        let reaper = Reaper()
        defer { reaper.killAll() }
        let blue = try await Fixture.serve(body: "v1")
        defer { blue.stop() }
        let green = try await Fixture.serve(body: "v2")
        defer { green.stop() }

        var strategy = NginxBlueGreenStrategy(
            upstreamFile: dir.sub("nginx/upstream.conf"), upstreamName: "app",
            colors: ["blue": [blue.hostPort], "green": [green.hostPort], "broken": ["127.0.0.1:99999"]])
        let initial = NginxBlueGreenExecutor(strategy, phaseTimeout: .seconds(60), stateDirectory: dir.sub("state"))
            .upstreamText(colour: "green")
        let nginx = try await NginxInstance.start(dir: dir, upstream: initial, reaper: reaper)
        strategy.test = nginx.base + ["-t", "-q"]
        strategy.reload = nginx.base + ["-s", "reload"]
        // Each colour reports its release at a version URL; the check URL goes through nginx.
        strategy.versionURLs = ["blue": "http://\(blue.hostPort)/version", "green": "http://\(green.hostPort)/version"]
        strategy.checkURL = "http://127.0.0.1:\(nginx.port)/healthz"
        let exec = NginxBlueGreenExecutor(strategy, phaseTimeout: .seconds(60), stateDirectory: dir.sub("state"))
        #expect(try exec.activeColour() == "green")
        #expect(try await exec.currentVersion() == "v2")
        #expect(try await exec.availableVersions() == ["v1", "broken", "v2"])

        let client = try await Fixture.client(url: "http://127.0.0.1:\(nginx.port)/", dir: dir)
        defer { client.process.stop() }
        // The client is under way through nginx to green (its first answer came before `client` returned).
        try await Fixture.waitForCount(green, atLeast: 1, "green to answer the client through nginx")

        // A colour nginx rejects: `nginx -t` fails, the include is put back, nothing is reloaded.
        let before = TestFiles.read(nginx.upstreamFile)
        let rejected = try await runPlan(
            exec, from: "v2", to: "broken", incident: "inc-broken", state: dir.sub("state"))
        guard case let .failed(phase, message) = rejected.status else { Issue.record("\(rejected.summary)"); return }
        #expect(phase == "test")
        #expect(message.contains("nginx -t") || message.contains("-t -q"), "\(message)")
        #expect(message.contains("put the previous \(nginx.upstreamFile) back; nginx was not reloaded"), "\(message)")
        #expect(TestFiles.read(nginx.upstreamFile) == before)

        // The real switch, green -> blue, while the client keeps requesting through nginx.
        try await exec.precheck(target: "v1")
        await #expect { try await exec.precheck(target: "v7") } throws: { e in
            "\(e)" == "nginx-blue-green: no colour runs v7 (colours: blue, broken, green)"
        }
        let outcome = try await runPlan(exec, from: "v2", to: "v1", incident: "inc-nginx", state: dir.sub("state"))
        let done = Fixture.wallClock()
        #expect(outcome.status == .finished, "\(outcome.summary)")
        // nginx reloads asynchronously, and its old workers answer from green until they finish: stop the client
        // once blue has answered 10 requests in a row with green silent and the client has sent well over 50 (a few
        // of the answers counted are the executor's own version checks). If that never comes, the checks below
        // say what the client saw.
        try? await Self.waitForTakeover(by: blue, from: green, total: 80)
        let result = try await Fixture.stop(client)
        #expect(result.failed == 0, "failed requests: \(result.errors)")
        #expect(result.ok > 50, "only \(result.ok) requests")
        #expect((result.bodies["v2"] ?? 0) > 0 && (result.bodies["v1"] ?? 0) > 0, "\(result.bodies)")
        #expect(result.transitions.last?.1 == "v1")
        // nginx reloads asynchronously; soon after the executor returned only blue answers (generous bound: the
        // test machine is shared).
        if let last = result.transitions.last {
            #expect(last.0 < done + 5, "blue took over \(last.0 - done)s after the executor returned")
        }
        // While old workers finish, old and new workers both answer for a moment; that overlap stays short.
        let firstBlue = result.transitions.first { $0.1 == "v1" }?.0 ?? 0
        let overlap = (result.transitions.last?.0 ?? 0) - firstBlue
        #expect(overlap < 5, "green and blue alternated for \(overlap)s")
        #expect(try exec.activeColour() == "blue")
        #expect(try await exec.currentVersion() == "v1")
        print(
            "nginx blue-green: \(result.ok) requests through the switch, \(result.failed) failed, green/blue overlap \(ValueFormat.trim(overlap))s"
        )
    }
}

@Suite struct ExecutorHAProxyTests {
    @Test func drainedCanaryGetsNoNewRequests() async throws {
        let dir = try ScratchDir("haproxy")
        defer { dir.remove() }
        let reaper = Reaper()
        defer { reaper.killAll() }
        let stable = try await Fixture.serve(body: "stable")
        defer { stable.stop() }
        let canary = try await Fixture.serve(body: "canary")
        defer { canary.stop() }
        let haproxy = try await HAProxyInstance.start(
            dir: dir, servers: [("stable", stable.port), ("canary", canary.port)], reaper: reaper)
        let exec = HAProxyCanaryExecutor(
            HAProxyCanaryStrategy(socket: haproxy.socket, backend: "app", canaryServer: "canary"),
            phaseTimeout: .seconds(60))
        let servers = try await exec.servers()
        #expect(servers.map(\.server) == ["stable", "canary"])
        #expect(servers.allSatisfy { $0.takesNewRequests }, "\(servers)")
        try await exec.precheck(target: "stable")

        let client = try await Fixture.client(url: "http://127.0.0.1:\(haproxy.port)/", dir: dir)
        defer { client.process.stop() }
        // Round robin: once both servers have answered the client, the canary has served it before the drain.
        try await Fixture.waitForCount(canary, atLeast: 1, "the canary to answer the client through haproxy")
        try await Fixture.waitForCount(stable, atLeast: 1, "the stable server to answer the client through haproxy")
        let outcome = try await runPlan(exec, from: "canary", to: "stable", state: dir.sub("state"))
        #expect(outcome.status == .finished, "\(outcome.summary)")
        let drained = try await exec.servers().first { $0.server == "canary" }
        #expect(drained?.draining == true, "\(String(describing: drained))")
        // A request already on its way to the canary may finish: the client sends one request at a time, so once
        // the stable server has answered two more, any request that was in flight at the drain has been counted.
        let stableAfterDrain = try await Fixture.count(stable)
        try await Fixture.waitForCount(
            stable, atLeast: stableAfterDrain + 2, "the stable server to answer after the drain")
        let atDrain = try await Fixture.count(canary)
        let stableAtDrain = try await Fixture.count(stable)
        // Until the stable server has taken 10 more requests (a busy runner may send slowly; the bound is generous).
        let waitStarted = monotonicMs()
        var stableLater = try await Fixture.count(stable)
        if let later = try? await Fixture.waitForCount(
            stable, atLeast: stableAtDrain + 11, "10 more requests on the stable server")
        {
            stableLater = later
        }
        let waited = Double(monotonicMs() - waitStarted) / 1000
        let later = try await Fixture.count(canary)
        let result = try await Fixture.stop(client)
        #expect(atDrain > 0, "the canary served nothing before the drain")
        #expect(later == atDrain, "the canary got \(later - atDrain) new requests after the drain")
        #expect(stableLater > stableAtDrain + 10, "the stable server stopped getting requests")
        #expect(result.failed == 0, "\(result.errors)")
        print(
            "haproxy canary: canary served \(atDrain) before the drain and \(later - atDrain) after; stable +\(stableLater - stableAtDrain) in \(ValueFormat.trim(waited))s; \(result.failed) failed"
        )

        // Draining again is harmless (idempotent), and a precheck now refuses to drain the last server.
        #expect(
            try await runPlan(exec, from: "canary", to: "stable", incident: "inc-2", state: dir.sub("state")).status
                == .finished)
        let last = HAProxyCanaryExecutor(
            HAProxyCanaryStrategy(socket: haproxy.socket, backend: "app", canaryServer: "stable"),
            phaseTimeout: .seconds(60))
        await #expect { try await last.precheck(target: "x") } throws: { e in
            "\(e)" == "haproxy-canary: draining app/stable would leave backend app with no server taking requests"
        }
        let unknown = HAProxyCanaryExecutor(
            HAProxyCanaryStrategy(socket: haproxy.socket, backend: "app", canaryServer: "nope"),
            phaseTimeout: .seconds(60))
        await #expect { try await unknown.precheck(target: "x") } throws: { e in
            "\(e)" == "haproxy-canary: backend app has no server nope (servers: stable, canary)"
        }
        let noSocket = HAProxyCanaryExecutor(
            HAProxyCanaryStrategy(socket: dir.sub("missing.sock"), backend: "app", canaryServer: "canary"),
            phaseTimeout: .seconds(60))
        await #expect { try await noSocket.precheck(target: "x") } throws: { e in
            "\(e)"
                == "haproxy-canary: \(dir.sub("missing.sock")): connect: No such file or directory (command \"show servers state app\")"
        }
    }

    @Test func weightModeSetsWeightZero() async throws {
        let dir = try ScratchDir("haproxy")
        defer { dir.remove() }
        let reaper = Reaper()
        defer { reaper.killAll() }
        let a = try await Fixture.serve(body: "a")
        defer { a.stop() }
        let b = try await Fixture.serve(body: "b")
        defer { b.stop() }
        let haproxy = try await HAProxyInstance.start(
            dir: dir, servers: [("stable", a.port), ("canary", b.port)], reaper: reaper)
        let exec = HAProxyCanaryExecutor(
            HAProxyCanaryStrategy(socket: haproxy.socket, backend: "app", canaryServer: "canary", mode: "weight"),
            phaseTimeout: .seconds(60))
        #expect(try await runPlan(exec, from: "x", to: "y", state: dir.sub("state")).status == .finished)
        let canary = try await exec.servers().first { $0.server == "canary" }
        #expect(canary?.userWeight == 0)
        #expect(canary?.takesNewRequests == false)
    }
}
