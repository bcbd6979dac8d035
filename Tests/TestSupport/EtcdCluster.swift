#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem
import Synchronization

/// A real etcd cluster on loopback for one test: `members` processes of Debian's etcd (3.4), each with its own
/// client and peer port and data directory in a scratch directory, a fresh cluster token. `start` returns once
/// every member reports itself healthy (`GET /health`), not after a guessed delay. Members can be killed
/// (SIGKILL), stopped (SIGTERM) and restarted on the same data directory and ports (only once the old process has
/// exited). `shutdown()` (or release) stops every member and removes the directory.
///
/// With `tls: true` the client URLs are https, with certificates made by the `openssl` CLI (a CA, a server
/// certificate for 127.0.0.1, a client certificate), and members require a client certificate
/// (`--client-cert-auth`). Peers speak plain HTTP on loopback either way.
public final class EtcdCluster: Sendable {
    public struct Member: Sendable {
        public let name: String
        public let clientPort: Int
        public let peerPort: Int
        public let dataDir: String
        public let log: String
    }

    public let members: [Member]
    public let scratch: ScratchDir
    /// The client side of TLS (CA, client certificate and key) when started with `tls: true`.
    public let tls: EtcdTLS?
    private let processes: Mutex<[ChildProcess?]>
    private let argvs: [[String]]

    /// The etcd binary, nil when not installed.
    public static let binary: String? = program(named: "etcd")

    /// Whether the etcd tests run: etcd is installed, or this is CI (where a missing etcd must fail, not skip).
    public static var runnable: Bool { binary != nil || getenv("CI") != nil }

    public static let missing =
        "etcd is not installed: `make test-deps` (or apt-get install etcd-server etcd-client) installs it"

    /// The client URLs, member order.
    public var endpoints: [String] { members.indices.map(endpoint) }

    public func endpoint(_ member: Int) -> String {
        "\(tls == nil ? "http" : "https")://127.0.0.1:\(members[member].clientPort)"
    }

    private init(members: [Member], argvs: [[String]], scratch: ScratchDir, tls: EtcdTLS?) {
        self.members = members
        self.argvs = argvs
        self.scratch = scratch
        self.tls = tls
        processes = Mutex(Array(repeating: nil, count: members.count))
        _ = Self.exitHook
        Self.directories.withLock { _ = $0.insert(scratch.path) }
    }

    deinit { shutdown() }

    /// The process groups of every member running now, killed when the test process exits (a cluster shared by
    /// several tests is never released, and etcd, unlike the Python helpers, does not notice its parent going).
    private static let running = Mutex<Set<pid_t>>([])
    /// The scratch directories of clusters not shut down yet, removed at exit too.
    private static let directories = Mutex<Set<String>>([])
    private static let exitHook: Void = {
        atexit {
            for pid in EtcdCluster.running.withLock({ $0 }) { Glibc.kill(-pid, SIGKILL) }
            for dir in EtcdCluster.directories.withLock({ $0 }) { FileIO.removeTree(dir) }
        }
    }()

    /// One cluster shared by the tests of this process that do not stop members (each uses its own key prefix).
    public static func shared() async throws -> EtcdCluster {
        try await SharedCluster.instance.get()
    }

    /// Starts a cluster of `members` and waits until every member is healthy. Ports are picked free; if one was
    /// taken meanwhile (a member exits at once), the whole cluster is tried again on new ports.
    public static func start(members count: Int = 3, tls: Bool = false) async throws -> EtcdCluster {
        guard let etcd = binary else { throw TestFailure(missing) }
        var lastError: (any Error)?
        for _ in 0..<3 {
            let scratch = try ScratchDir("etcd")
            let clientTLS = tls ? try await makeCertificates(scratch) : nil
            var ports = Set<Int>()
            while ports.count < 2 * count { ports.insert(try Loopback.freePort()) }
            let list = Array(ports)
            let token = "rollbackd-test-\(getpid())-\(monotonicMs())-\(list[0])"
            var members: [Member] = []
            for i in 0..<count {
                members.append(
                    Member(
                        name: "m\(i)", clientPort: list[2 * i], peerPort: list[2 * i + 1],
                        dataDir: scratch.sub("m\(i).etcd"), log: scratch.sub("m\(i).log")))
            }
            let loopback = members.map {
                EtcdLoopback.Member(
                    name: $0.name, clientPort: $0.clientPort, peerPort: $0.peerPort, dataDir: $0.dataDir)
            }
            let argvs = EtcdLoopback.argv(etcd: etcd, members: loopback, token: token, clientTLS: tls).map { base in
                var argv = base
                if tls {
                    argv += [
                        "--cert-file", scratch.sub("server.pem"), "--key-file", scratch.sub("server.key"),
                        "--trusted-ca-file", scratch.sub("ca.pem"), "--client-cert-auth",
                    ]
                }
                return argv
            }
            let cluster = EtcdCluster(members: members, argvs: argvs, scratch: scratch, tls: clientTLS)
            do {
                for i in 0..<count { try cluster.launch(i) }
                try await cluster.waitHealthy()
                return cluster
            } catch {
                lastError = error
                cluster.shutdown()
            }
        }
        throw lastError ?? TestFailure("etcd cluster did not start")
    }

    private func launch(_ member: Int) throws {
        let child: ChildProcess
        do {
            child = try ChildProcess(argvs[member], log: members[member].log)
        } catch {
            throw TestFailure(error.description)
        }
        processes.withLock { $0[member] = child }
        _ = Self.exitHook
        Self.running.withLock { _ = $0.insert(child.pid) }
    }

    private func forget(_ p: ChildProcess) {
        Self.running.withLock { _ = $0.remove(p.pid) }
    }

    /// The member's log (etcd's own output).
    public func log(_ member: Int) -> String { TestFiles.read(members[member].log) ?? "" }

    /// Whether the member answers `GET /health` with `{"health":"true"}` (it has a leader and serves).
    public func isHealthy(_ member: Int) async -> Bool {
        var o = HTTPOptions()
        o.timeout = .seconds(5)
        o.caFile = tls?.caFile
        o.clientCertFile = tls?.certFile
        o.clientKeyFile = tls?.keyFile
        guard case let .success(r) = await HTTPClient.shared.send(.get(endpoint(member) + "/health", options: o))
        else { return false }
        return r.status == 200 && r.text.replacing(" ", with: "").contains("\"health\":\"true\"")
    }

    /// Waits until every running member (all, by default) is healthy; fails naming the member, with its log,
    /// when one exits or does not become healthy.
    public func waitHealthy(_ only: [Int]? = nil) async throws {
        for i in only ?? Array(members.indices) {
            try await waitUntil(
                "etcd member \(members[i].name) (\(endpoint(i))) to be healthy",
                explain: { "its log:\n" + String(log(i).suffix(3000)) }
            ) {
                if let p = processes.withLock({ $0[i] }), let end = p.waitExit(timeout: .zero) {
                    processes.withLock { $0[i] = nil }
                    forget(p)
                    throw TestFailure("etcd member \(members[i].name) exited (\(end)):\n" + String(log(i).suffix(3000)))
                }
                return await isHealthy(i)
            }
        }
    }

    /// SIGKILL, then waits until the process has exited.
    public func kill(member: Int) async {
        guard let p = processes.withLock({ $0[member] }) else { return }
        _ = await BlockingThread.run {
            Glibc.kill(-p.pid, SIGKILL)
            return p.waitExit(timeout: .seconds(60))
        }
        forget(p)
        processes.withLock { $0[member] = nil }
    }

    /// SIGTERM (SIGKILL after 10 s), then waits until the process has exited.
    public func stop(member: Int) async {
        guard let p = processes.withLock({ $0[member] }) else { return }
        _ = await BlockingThread.run {
            Glibc.kill(-p.pid, SIGCONT) // a paused member must run to see the SIGTERM
            p.stop(grace: .seconds(10))
        }
        forget(p)
        processes.withLock { $0[member] = nil }
    }

    /// SIGSTOP: the member keeps its sockets but answers nothing (a hung or partitioned member) until `resume`.
    public func pause(member: Int) {
        if let p = processes.withLock({ $0[member] }) { Glibc.kill(-p.pid, SIGSTOP) }
    }

    /// SIGCONT after `pause`.
    public func resume(member: Int) {
        if let p = processes.withLock({ $0[member] }) { Glibc.kill(-p.pid, SIGCONT) }
    }

    /// Starts a stopped or killed member again on its data directory and ports, and waits until it is healthy.
    public func restart(member: Int) async throws {
        if processes.withLock({ $0[member] }) != nil { await stop(member: member) }
        try launch(member)
        try await waitHealthy([member])
    }

    /// Stops every member and removes the scratch directory; idempotent.
    public func shutdown() {
        let all = processes.withLock { list -> [ChildProcess] in
            defer { list = Array(repeating: nil, count: list.count) }
            return list.compactMap { $0 }
        }
        for p in all {
            Glibc.kill(-p.pid, SIGTERM)
            Glibc.kill(-p.pid, SIGCONT) // a paused member must run to see the SIGTERM
        }
        for p in all {
            p.stop(grace: .seconds(5))
            forget(p)
        }
        scratch.remove()
        Self.directories.withLock { _ = $0.remove(scratch.path) }
    }

    /// A CA, a server certificate for 127.0.0.1 (server and client use: members also dial each other's client
    /// URLs for the gateway) and a client certificate, with the `openssl` CLI.
    static func makeCertificates(_ dir: ScratchDir) async throws -> EtcdTLS {
        func openssl(_ args: [String]) async throws {
            let r = try await ProcessRunner.run(["openssl"] + args, timeout: .seconds(60))
            guard r.succeeded else {
                throw TestFailure(
                    "openssl \(ProcessRunner.display(args)): \(r.summary(timeout: .seconds(60)))\n\(r.stderrText)")
            }
        }
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try await openssl(
            ["req", "-x509"] + key + [
                "-keyout", dir.sub("ca.key"), "-out", dir.sub("ca.pem"),
                "-days", "1", "-subj", "/CN=rollbackd test CA",
            ])
        for (name, usage) in [("server", "serverAuth,clientAuth"), ("client", "clientAuth")] {
            try await openssl(
                ["req"] + key + [
                    "-keyout", dir.sub("\(name).key"), "-out", dir.sub("\(name).csr"),
                    "-subj", "/CN=\(name == "server" ? "127.0.0.1" : "rollbackd-test-client")",
                ])
            let ext = dir.write("\(name).ext", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=\(usage)\n")
            try await openssl([
                "x509", "-req", "-in", dir.sub("\(name).csr"), "-CA", dir.sub("ca.pem"),
                "-CAkey", dir.sub("ca.key"), "-CAcreateserial", "-out", dir.sub("\(name).pem"), "-days", "1",
                "-extfile", ext,
            ])
        }
        return EtcdTLS(caFile: dir.sub("ca.pem"), certFile: dir.sub("client.pem"), keyFile: dir.sub("client.key"))
    }
}

/// The shared cluster, started once on first use.
private actor SharedCluster {
    static let instance = SharedCluster()
    private var started: Task<EtcdCluster, Error>?

    func get() async throws -> EtcdCluster {
        if let started { return try await started.value }
        let t = Task { try await EtcdCluster.start() }
        started = t
        return try await t.value
    }
}
