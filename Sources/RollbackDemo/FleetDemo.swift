#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem
import RollbackService

/// `rollbackd demo --fleet N`: fleet mode's story on loopback. A 3-member etcd (Debian's `etcd`), and N hosts
/// `h1`…`hN`, each a real `rollbackd run` child process with its own state directory, `rollbackd-demo-service`
/// instances, release tree (v1 good, v2 bad) and traffic, and the same `fleet` section (a short lease). The story:
/// a leader is elected, v1 is marked known-good for the fleet (on the leader), v2 is deployed on every host, the
/// leader fires on the hosts' summed evidence and decides once, every host swaps back to v1, the leader verifies
/// the fleet's recovery. Everything started is stopped at the end (also when interrupted); the hosts' state
/// directories, their logs (every event, one line each) and the configs stay for reading.
///
/// The hosts are child processes, not daemons in this process (as the single-host demo runs it): fleet mode is
/// about separate hosts, and a child is what an operator runs on each one: its own lease, its own etcd client, its
/// own control socket; a host can be killed without touching the others, and `rollbackd` runs exactly as
/// deployed (`rollbackd run --log-target stderr`).
public enum FleetDemo {
    public struct Options: Sendable {
        /// The `rollbackd` executable the hosts run.
        public var rollbackdBinary: String
        /// The `rollbackd-demo-service` executable.
        public var serviceBinary: String
        /// The `etcd` executable; nil: looked up (`FleetDemo.findEtcd`).
        public var etcdBinary: String?
        /// Where to lay everything out (created; default: a new `/tmp/rollbackd-fleet-XXXXXX`).
        public var workDirectory: String?
        public var hosts: Int
        /// `rollbackd-demo-service` instances per host.
        public var instances: Int
        public var badErrorRate: Double
        public var warmUp: Interval
        public var timeout: Interval
        public var interval: Interval
        public var leaseTTL: Interval

        public init(
            rollbackdBinary: String, serviceBinary: String, etcdBinary: String? = nil, workDirectory: String? = nil,
            hosts: Int = 3, instances: Int = 1, badErrorRate: Double = 0.3, warmUp: Interval = .seconds(4),
            timeout: Interval = .seconds(90), interval: Interval = .seconds(1), leaseTTL: Interval = .seconds(3)
        ) {
            self.rollbackdBinary = rollbackdBinary
            self.serviceBinary = serviceBinary
            self.etcdBinary = etcdBinary
            self.workDirectory = workDirectory
            self.hosts = hosts
            self.instances = instances
            self.badErrorRate = badErrorRate
            self.warmUp = warmUp
            self.timeout = timeout
            self.interval = interval
            self.leaseTTL = leaseTTL
        }
    }

    public static let hostRange = 2...9

    public static let etcdMissing =
        "etcd is not installed (the fleet demo runs a 3-member etcd cluster on loopback): `apt-get install etcd-server` installs it, or `make demo-fleet` installs it and runs this demo"

    /// Debian's `etcd` (from etcd-server): on PATH, or in the usual places.
    public static func findEtcd() -> String? {
        var dirs = (getenv("PATH").map { String(cString: $0) } ?? "").split(separator: ":").map(String.init)
        dirs += ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin"]
        for d in dirs where !d.isEmpty && access(d + "/etcd", X_OK) == 0 { return d + "/etcd" }
        return nil
    }

    /// One host's part of the story.
    public struct HostResult: Sendable {
        public var name: String
        /// The release live at the end (before clean-up removed the release tree).
        public var live: String?
        /// From the deploy of v2 to this host's `current` pointing at v1 again.
        public var swappedSeconds: Double?
    }

    public struct Summary: Sendable {
        /// `verified`, `verification_failed`, `rollback_failed`, `not_detected`, `interrupted` or `error`.
        public var outcome = "error"
        public var detail = ""
        public var leader: String?
        /// From the start of the hosts to the first leader elected.
        public var electedSeconds: Double?
        /// From the deploy: the leader's trigger firing, its decision, the last host swapped back, the fleet's
        /// recovery verified.
        public var detectSeconds: Double?
        public var decidedSeconds: Double?
        public var lastSwappedSeconds: Double?
        public var verifiedSeconds: Double?
        /// The leader's trigger event: the summed counts it decided on.
        public var firing: String?
        public var decision: String?
        public var hosts: [HostResult] = []
        public var workDirectory = ""
        public var wallSeconds = 0.0

        /// Every host swapped back to v1.
        public var everyHostRolledBack: Bool {
            !hosts.isEmpty && hosts.allSatisfy { $0.swappedSeconds != nil && $0.live == "v1" }
        }

        public var json: JSONValue {
            func num(_ v: Double?) -> JSONValue { v.map { .number(($0 * 1000).rounded() / 1000) } ?? .null }
            func str(_ v: String?) -> JSONValue { v.map { .string($0) } ?? .null }
            return .object([
                ("outcome", .string(outcome)), ("detail", .string(detail)), ("leader", str(leader)),
                ("electedSeconds", num(electedSeconds)), ("detectSeconds", num(detectSeconds)),
                ("decidedSeconds", num(decidedSeconds)), ("lastSwappedSeconds", num(lastSwappedSeconds)),
                ("verifiedSeconds", num(verifiedSeconds)), ("firing", str(firing)), ("decision", str(decision)),
                ("everyHostRolledBack", .bool(everyHostRolledBack)),
                (
                    "hosts",
                    .array(
                        hosts.map {
                            .object([
                                ("name", .string($0.name)), ("live", str($0.live)),
                                ("swappedSeconds", num($0.swappedSeconds)),
                            ])
                        })
                ),
                ("from", .string("v2")), ("to", .string("v1")), ("workDirectory", .string(workDirectory)),
                ("wallSeconds", num(wallSeconds)),
            ])
        }
    }

    /// Runs the demo; cancel the calling task to interrupt it (clean-up still runs).
    public static func run(_ options: Options, console: DemoConsole) async -> Summary {
        let started = SystemTime.monotonicMs()
        var summary = Summary()
        let scene: Scene
        do {
            scene = try Scene(options, console: console)
        } catch {
            summary.detail = "\(error)"
            console.line("rollbackd demo --fleet: \(error)")
            return summary
        }
        summary.workDirectory = scene.dir
        do {
            try await scene.play(&summary)
        } catch is CancellationError {
            summary.outcome = "interrupted"
            summary.detail = "interrupted; cleaning up"
            console.line("interrupted: stopping the hosts, their instances and etcd, removing the releases")
        } catch {
            summary.detail = "\(error)"
            console.line("rollbackd demo --fleet: \(error)")
        }
        summary.hosts = scene.results(summary.hosts)
        await scene.tearDown()
        summary.wallSeconds = Double(SystemTime.monotonicMs() - started) / 1000
        console.line(
            "cleaned up: hosts, instances and etcd stopped, releases and etcd data removed; kept \(scene.dir)/h*/state, h*/thresholds.json and logs/"
        )
        return summary
    }

    /// One line of a host's log (`rollbackd run --log-target stderr`): `TIME IDENT PRIORITY kind: message [fields]`.
    struct LogEvent {
        var host: Int
        /// When the host logged it (its `TIME`), ms since the epoch; when the demo read it if that is unreadable.
        var atMs: Int64
        var kind: String
        var message: String
        var fields: String
    }

    static func parse(_ line: Substring) -> (at: Timestamp?, kind: String, message: String, fields: String)? {
        guard let colon = line.firstRange(of: ": ") else { return nil }
        let head = line[..<colon.lowerBound].split(separator: " ")
        guard head.count == 4, head[3].allSatisfy({ $0.isLowercase || $0 == "_" }) else { return nil }
        var message = line[colon.upperBound...]
        var fields = Substring("")
        // The fields come last, in one pair of brackets: ` [name=value …]`.
        if message.hasSuffix("]"), let open = message.ranges(of: " [").last {
            fields = message[open.upperBound..<message.index(before: message.endIndex)]
            message = message[..<open.lowerBound]
        }
        return (Timestamp(iso8601: String(head[0])), String(head[3]), String(message), String(fields))
    }

    final class Scene {
        let options: Options
        let console: DemoConsole
        let dir: String
        let etcd: String
        let clientPorts: [Int]
        let peerPorts: [Int]
        let names: [String]
        let instancePorts: [[Int]]
        /// Wall-clock ms since the epoch (the hosts' events carry their wall-clock time).
        let start = Scene.wallMs()
        static func wallMs() -> Int64 { SystemTime.now().millisecondsSinceEpoch }

        private var etcdMembers: [ChildProcess] = []
        private var instances: [ChildProcess] = []
        private var daemons: [ChildProcess?] = []
        private var trafficTask: Task<Void, Never>?
        private var logOffsets: [Int] = []
        private(set) var events: [LogEvent] = []
        private var swapped: [Double?] = []

        init(_ options: Options, console: DemoConsole) throws {
            self.options = options
            self.console = console
            guard let etcd = options.etcdBinary ?? FleetDemo.findEtcd() else { throw Demo.Failure(etcdMissing) }
            guard access(etcd, X_OK) == 0 else { throw Demo.Failure("\(etcd) is not an executable: \(etcdMissing)") }
            self.etcd = etcd
            for (what, path) in [("rollbackd", options.rollbackdBinary), ("demo service", options.serviceBinary)]
            where access(path, X_OK) != 0 {
                throw Demo.Failure(
                    "the \(what) \(path) is missing or not executable; `swift build` builds it (or pass --service-binary)"
                )
            }
            if let d = options.workDirectory {
                try FileIO.makeDirectories(d, mode: 0o755)
                dir = d
            } else {
                var template = Array("/tmp/rollbackd-fleet-XXXXXX".utf8CString)
                guard let made = mkdtemp(&template) else {
                    throw SystemError("mkdtemp", path: "/tmp/rollbackd-fleet-XXXXXX")
                }
                dir = String(cString: made)
            }
            guard !FileIO.exists(dir + "/h1") else {
                throw Demo.Failure("\(dir) holds an earlier fleet demo (h1/); pass an empty --work-dir")
            }
            var ports = Set<Int>()
            let needed = 6 + options.hosts * options.instances
            while ports.count < needed { ports.insert(try Loopback.freePort()) }
            var list = Array(ports)
            clientPorts = Array(list[0..<3])
            peerPorts = Array(list[3..<6])
            list.removeFirst(6)
            names = (1...options.hosts).map { "h\($0)" }
            instancePorts = (0..<options.hosts).map { i in
                Array(list[(i * options.instances)..<((i + 1) * options.instances)])
            }
            try FileIO.makeDirectories(dir + "/logs", mode: 0o755)
            let endpoints = clientPorts.map { "\"http://127.0.0.1:\($0)\"" }.joined(separator: ", ")
            for (i, name) in names.enumerated() {
                let h = hostDir(i)
                try FileIO.makeDirectories(h, mode: 0o755)
                try Demo.writeRelease(h, "v1", errorRate: 0, latencyMs: 5)
                try Demo.writeRelease(h, "v2", errorRate: options.badErrorRate, latencyMs: 6)
                try Demo.pointLink(h + "/current", at: h + "/releases/v1")
                let fleet =
                    #", "fleet": {"endpoints": [\#(endpoints)], "name": "demo-shop", "host": "\#(name)", "leaseTTL": "\#(options.leaseTTL)"}"#
                let text = Demo.config(
                    service: "demo-shop", dir: h, ports: instancePorts[i], journal: true,
                    interval: options.interval.description, top: fleet)
                let path = h + "/thresholds.json"
                try FileIO.writeAtomically(path: path, bytes: Array(text.utf8), mode: 0o600)
                if case let .failure(e) = ConfigFile.load(path: path) {
                    throw Demo.Failure("the fleet demo's table for \(name) is invalid: \(e)")
                }
            }
            daemons = Array(repeating: nil, count: options.hosts)
            logOffsets = Array(repeating: 0, count: options.hosts)
            swapped = Array(repeating: nil, count: options.hosts)
        }

        func hostDir(_ i: Int) -> String { "\(dir)/\(names[i])" }
        func hostLog(_ i: Int) -> String { "\(dir)/logs/\(names[i]).log" }
        func offset(_ ms: Int64) -> String {
            let s = "+" + Demo.fixed1(Double(ms - start) / 1000) + "s"
            return String(repeating: " ", count: max(0, 7 - s.count)) + s
        }

        func play(_ summary: inout Summary) async throws {
            let n = options.hosts
            console.line("rollbackd demo --fleet \(n) in \(dir)")
            console.line(
                "  hosts:    \(names.joined(separator: ", ")): each a `rollbackd run` process with its own state, \(options.instances) demo-service instance\(options.instances == 1 ? "" : "s"), release tree and traffic"
            )
            console.line(
                "  releases: v1 (good) and v2 (bad: \(ValueFormat.percent(options.badErrorRate)) of API requests fail) on every host"
            )
            console.line(
                "  fleet:    demo-shop on etcd \(clientPorts.map { "127.0.0.1:\($0)" }.joined(separator: ", ")); lease TTL \(options.leaseTTL), interval \(options.interval)"
            )

            // etcd: three members on loopback, healthy before any host starts.
            try await startEtcd()
            console.line("\(offset(Scene.wallMs()))  etcd                 3 members healthy (\(etcd))")

            // The hosts' instances and traffic, then the hosts themselves.
            for i in 0..<n {
                for (k, port) in instancePorts[i].enumerated() {
                    instances.append(
                        try ChildProcess(
                            [options.serviceBinary, "--port", String(port), "--release-dir", hostDir(i) + "/current"],
                            log: "\(dir)/logs/\(names[i])-instance-\(k + 1).log"))
                }
            }
            try await waitHealthy()
            startTraffic()
            let hostsStarted = Scene.wallMs()
            for i in 0..<n {
                daemons[i] = try ChildProcess(
                    [
                        options.rollbackdBinary, "run", "--config", hostDir(i) + "/thresholds.json",
                        "--state-dir", hostDir(i) + "/state", "--socket", hostDir(i) + "/control.sock",
                        "--log-target", "stderr",
                    ], log: hostLog(i))
            }
            console.line("\(offset(hostsStarted))  hosts                \(n) daemons started; their events:")

            // A leader, then v1 known-good for the fleet (an operator command: only the leader takes it).
            let elected = try await waitForEvent("a fleet leader", seconds: 30) { $0.kind == "fleet_leader_elected" }
            summary.electedSeconds = Double(elected.atMs - hostsStarted) / 1000
            summary.leader = names[elected.host]
            try await markKnownGood()
            _ = try await waitForEvent("v1 known-good for the fleet", seconds: 30) { $0.kind == "release_known_good" }
            try await pause(options.warmUp.milliseconds)

            // Deploy v2 on every host.
            let deployed = Scene.wallMs()
            for i in 0..<n { try Demo.pointLink(hostDir(i) + "/current", at: hostDir(i) + "/releases/v2") }
            console.line("\(offset(deployed))  DEPLOY               current -> releases/v2 on every host")
            let eventsBefore = events.count

            // Until every host is back on v1 and the leader verified (or the story ends otherwise).
            let deadline = SystemTime.monotonicMs() + options.timeout.milliseconds
            let endKinds: Set<String> = [
                "verification_passed", "verification_failed", "rollback_failed", "automation_halted",
            ]
            var end: LogEvent?
            while SystemTime.monotonicMs() < deadline {
                try Task.checkCancellation()
                pump()
                let now = Scene.wallMs()
                for i in 0..<n where swapped[i] == nil && live(i) == "v1" {
                    swapped[i] = Double(now - deployed) / 1000
                    console.line("\(offset(now))  \(Demo.pad("SWAPPED", 20)) \(names[i]): current -> releases/v1")
                }
                end = events[eventsBefore...].first { endKinds.contains($0.kind) }
                if let end, end.kind != "verification_passed" || swapped.allSatisfy({ $0 != nil }) { break }
                try checkDaemons()
                try await Task.sleep(for: .milliseconds(50))
            }
            pump()
            let after = events[eventsBefore...]
            func since(_ e: LogEvent?) -> Double? { e.map { Double($0.atMs - deployed) / 1000 } }
            let firing = after.first { $0.kind == "trigger_firing" }
            let decision = after.first { $0.kind == "rollback_started" || $0.kind == "decision" }
            summary.detectSeconds = since(firing)
            summary.decidedSeconds = since(decision)
            summary.firing = firing.map { "\(names[$0.host]): \($0.message)" }
            summary.decision = decision.map { "\(names[$0.host]): \($0.message)" }
            if let d = decision { summary.leader = names[d.host] }
            summary.verifiedSeconds = since(after.first { $0.kind == "verification_passed" })
            summary.hosts = results([])
            summary.lastSwappedSeconds = swapped.allSatisfy { $0 != nil } ? swapped.compactMap { $0 }.max() : nil
            switch end?.kind {
            case "verification_passed"? where summary.everyHostRolledBack: summary.outcome = "verified"
            case "verification_failed"?: summary.outcome = "verification_failed"
            case "rollback_failed"?, "automation_halted"?: summary.outcome = "rollback_failed"
            default: summary.outcome = firing == nil ? "not_detected" : "rollback_failed"
            }
            summary.detail =
                end?.message ?? "no verified fleet rollback within \(options.timeout) of the deploy"
            report(summary)
        }

        private func report(_ s: Summary) {
            func secs(_ v: Double?) -> String { v.map { "+" + Demo.fixed1($0) + "s" } ?? "—" }
            console.line("")
            if let f = s.firing { console.line("the leader fired on the summed evidence of the fleet: \(f)") }
            if let d = s.decision { console.line("its decision, once for the fleet: \(d)") }
            let perHost = s.hosts.map { "\($0.name) \(secs($0.swappedSeconds))" }.joined(separator: ", ")
            if s.outcome == "verified" {
                console.line(
                    "RESULT: every host rolled back to v1 (\(perHost) after the deploy); leader \(s.leader ?? "?") detected v2 at \(secs(s.detectSeconds)), the last host swapped back at \(secs(s.lastSwappedSeconds)), the fleet's recovery was verified at \(secs(s.verifiedSeconds))."
                )
            } else {
                console.line("RESULT: \(s.outcome): \(s.detail) (hosts: \(perHost))")
            }
            console.line("")
            console.line("host logs (every event):   \(dir)/logs/h1.log … h\(options.hosts).log")
            console.line("host state:                \(dir)/h1/state … (incident reports under the leader's)")
        }

        /// Each host's live release and swap time.
        func results(_ previous: [HostResult]) -> [HostResult] {
            guard previous.isEmpty else { return previous }
            return names.indices.map { HostResult(name: names[$0], live: live($0), swappedSeconds: swapped[$0]) }
        }

        private func live(_ i: Int) -> String? {
            var buf = [CChar](repeating: 0, count: 4096)
            let n = readlink(hostDir(i) + "/current", &buf, buf.count - 1)
            guard n > 0 else { return nil }
            let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return target.split(separator: "/").last.map(String.init)
        }

        /// Reads what the hosts logged since the last call; tells the console the events of the story.
        private func pump() {
            var fresh: [LogEvent] = []
            for i in names.indices {
                guard let bytes = try? FileIO.readAll(path: hostLog(i)), bytes.count > logOffsets[i],
                    let lastNewline = bytes.lastIndex(of: UInt8(ascii: "\n")), lastNewline >= logOffsets[i]
                else { continue }
                let text = String(decoding: bytes[logOffsets[i]...lastNewline], as: UTF8.self)
                logOffsets[i] = lastNewline + 1
                let now = Scene.wallMs()
                for line in text.split(separator: "\n") {
                    guard let p = FleetDemo.parse(line) else { continue }
                    let at = p.at?.millisecondsSinceEpoch ?? now
                    fresh.append(LogEvent(host: i, atMs: at, kind: p.kind, message: p.message, fields: p.fields))
                }
            }
            // The hosts' events in the order they happened (a host's own lines are in order already).
            for e in fresh.enumerated().sorted(by: { ($0.element.atMs, $0.offset) < ($1.element.atMs, $1.offset) })
                .map(\.element)
            {
                events.append(e)
                if shows(e) {
                    console.line("\(offset(e.atMs))  \(Demo.pad(e.kind, 20)) \(names[e.host]): \(e.message)")
                }
            }
        }

        /// The events of the story (not every phase of every host, nor the quiet ones).
        private func shows(_ e: LogEvent) -> Bool {
            switch e.kind {
            case "trigger_pending", "trigger_recovering", "config_loaded", "tick_overrun", "executor_phase":
                return false
            case "rollback_phase": return e.fields.contains("phase=start") || e.fields.contains("phase=end")
            default: return true
            }
        }

        private func waitForEvent(_ what: String, seconds: Double, _ match: (LogEvent) -> Bool) async throws
            -> LogEvent
        {
            let deadline = SystemTime.monotonicMs() + Int64(seconds * 1000)
            var seen = 0
            while true {
                try Task.checkCancellation()
                pump()
                if let e = events[seen...].first(where: match) { return e }
                seen = events.count
                try checkDaemons()
                if SystemTime.monotonicMs() > deadline {
                    throw Demo.Failure(
                        "timed out after \(Demo.fixed1(seconds))s waiting for \(what) (the hosts' logs are in \(dir)/logs)"
                    )
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        private func pause(_ ms: Int64) async throws {
            let until = SystemTime.monotonicMs() + ms
            while SystemTime.monotonicMs() < until {
                pump()
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        /// A host that exits on its own ends the demo, naming its log.
        private func checkDaemons() throws {
            for i in daemons.indices {
                guard let d = daemons[i], let end = d.waitExit(timeout: .zero) else { continue }
                daemons[i] = nil
                pump()
                throw Demo.Failure("host \(names[i]) exited (\(end)); its log: \(hostLog(i))")
            }
        }

        /// `mark-known-good v1` on the host that leads now (a follower refuses it, naming the leader).
        private func markKnownGood() async throws {
            let deadline = SystemTime.monotonicMs() + 20_000
            var last = ""
            while SystemTime.monotonicMs() < deadline {
                try Task.checkCancellation()
                pump()
                if let leader = events.last(where: { $0.kind == "fleet_leader_elected" })?.host {
                    let request = JSONValue.object([
                        ("command", .string("mark-known-good")), ("version", .string("v1")),
                        ("by", .string("rollbackd demo --fleet")),
                    ])
                    do {
                        let answer = try ControlClient.send(request, socket: hostDir(leader) + "/control.sock")
                        if answer["ok"] == .bool(true) {
                            console.line(
                                "\(offset(Scene.wallMs()))  MARK-KNOWN-GOOD      v1 (on the leader, \(names[leader]))"
                            )
                            return
                        }
                        last = answer.serialized
                    } catch { last = "\(error)" }
                }
                try await Task.sleep(for: .milliseconds(250))
            }
            throw Demo.Failure("mark-known-good v1 on the leader: \(last)")
        }

        private func startEtcd() async throws {
            let members = (0..<3).map { m in
                EtcdLoopback.Member(
                    name: "m\(m)", clientPort: clientPorts[m], peerPort: peerPorts[m], dataDir: "\(dir)/etcd/m\(m).etcd"
                )
            }
            let token = "rollbackd-demo-\(getpid())-\(SystemTime.monotonicMs())"
            for (m, argv) in EtcdLoopback.argv(etcd: etcd, members: members, token: token).enumerated() {
                etcdMembers.append(try ChildProcess(argv, log: "\(dir)/logs/etcd-m\(m).log"))
            }
            let client = HTTPClient(maxConnections: 4)
            let urls = clientPorts.map { "http://127.0.0.1:\($0)/health" }
            try await waitUntil(seconds: 30, "etcd's 3 members to be healthy (their logs: \(dir)/logs/etcd-m*.log)") {
                for (m, member) in etcdMembers.enumerated() {
                    if let end = member.waitExit(timeout: .zero) {
                        throw Demo.Failure("etcd member m\(m) exited (\(end)); its log: \(dir)/logs/etcd-m\(m).log")
                    }
                }
                let results = await client.sendAll(urls.map { HTTPRequest.get($0, options: HTTPOptions()) })
                return results.allSatisfy {
                    guard let r = try? $0.get(), r.status == 200 else { return false }
                    return r.text.replacing(" ", with: "").contains("\"health\":\"true\"")
                }
            }
        }

        private func waitHealthy() async throws {
            let client = HTTPClient(maxConnections: 8)
            let urls = instancePorts.joined().map { "http://127.0.0.1:\($0)/healthz" }
            try await waitUntil(seconds: 15, "the instances to answer /healthz (logs in \(dir)/logs)") {
                let results = await client.sendAll(urls.map { HTTPRequest.get($0, options: HTTPOptions()) })
                return results.allSatisfy { (try? $0.get())?.isSuccess == true }
            }
        }

        private func waitUntil(seconds: Double, _ what: String, _ condition: () async throws -> Bool) async throws {
            let deadline = SystemTime.monotonicMs() + Int64(seconds * 1000)
            while !(try await condition()) {
                try Task.checkCancellation()
                if SystemTime.monotonicMs() > deadline {
                    throw Demo.Failure("timed out after \(Demo.fixed1(seconds))s waiting for \(what)")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        /// Steady API traffic to every instance of every host (two requests every 100 ms each).
        private func startTraffic() {
            let urls = instancePorts.joined().map { "http://127.0.0.1:\($0)/api/checkout" }
            trafficTask = Task.detached {
                let client = HTTPClient(maxConnections: 16)
                while !Task.isCancelled {
                    _ = await client.sendAll(
                        urls.flatMap { u in (0..<2).map { _ in HTTPRequest.get(u, options: HTTPOptions()) } })
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
        }

        /// Stops every process this scene started (the hosts first: they resign their leases), removes the release
        /// trees and etcd's data; keeps the hosts' state, configs and the logs.
        func tearDown() async {
            trafficTask?.cancel()
            await trafficTask?.value
            let hosts = daemons.compactMap { $0 }
            daemons = daemons.map { _ in nil }
            for d in hosts { kill(-d.pid, SIGTERM) }
            await BlockingThread.run { for d in hosts { d.stop(grace: .seconds(10)) } }
            pump()
            let rest = instances + etcdMembers
            instances = []
            etcdMembers = []
            for p in rest { kill(-p.pid, SIGTERM) }
            await BlockingThread.run { for p in rest { p.stop(grace: .seconds(10)) } }
            for i in names.indices {
                unlink(hostDir(i) + "/current")
                FileIO.removeTree(hostDir(i) + "/releases")
            }
            FileIO.removeTree(dir + "/etcd")
        }
    }
}
