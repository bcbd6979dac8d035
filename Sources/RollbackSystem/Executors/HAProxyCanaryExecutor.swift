#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// HAProxy's runtime API (the `stats socket … level admin` UNIX socket): one command per connection.
public enum HAProxyRuntimeAPI {
    /// Sends `command` and returns the whole answer (HAProxy closes the connection after it).
    public static func send(_ command: String, socket path: String, timeout: Interval) async throws(ExecutorError)
        -> String
    {
        let r = await BlockingThread.run { sendBlocking(command, socket: path, timeout: timeout) }
        return try r.get()
    }

    static func sendBlocking(_ command: String, socket path: String, timeout: Interval) -> Result<String, ExecutorError>
    {
        func fail(_ what: String) -> Result<String, ExecutorError> {
            .failure(ExecutorError("haproxy-canary", "\(path): \(what) (command \(JSONValue.quote(command)))"))
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return fail("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(timeout.milliseconds / 1000), tv_usec: Int(timeout.milliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard pathBytes.count < capacity else { return fail("socket path longer than \(capacity - 1) bytes") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in pathBytes.enumerated() { raw[i] = b }
            raw[pathBytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { return fail("connect: \(String(cString: strerror(errno)))") }
        let line = Array((command + "\n").utf8)
        var off = 0
        while off < line.count {
            let n = line.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 { if errno == EINTR { continue }; return fail("write: \(String(cString: strerror(errno)))") }
            off += n
        }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return fail("no answer within \(timeout)") }
                return fail("read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
            if out.count > 8 << 20 { return fail("answer larger than 8 MiB") }
        }
        return .success(String(decoding: out, as: UTF8.self))
    }
}

/// One row of `show servers state <backend>`.
public struct HAProxyServerState: Sendable, Equatable {
    public var backend: String
    public var server: String
    public var address: String
    /// srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping.
    public var operationalState: Int
    /// srv_admin_state bits: 0x01/0x02/0x04/0x20/0x40 maintenance, 0x08/0x10 drain.
    public var adminState: Int
    /// srv_uweight: the weight set by the user.
    public var userWeight: Int

    public var inMaintenance: Bool { adminState & 0x67 != 0 }
    public var draining: Bool { adminState & 0x18 != 0 }
    /// Takes new requests: running, not in maintenance or drain, weight above 0.
    public var takesNewRequests: Bool { operationalState == 2 && !inMaintenance && !draining && userWeight > 0 }

    /// Parses the answer of `show servers state [backend]` (format version 1: a `1` line, a `# be_id be_name …`
    /// header naming the columns, then one line per server).
    public static func parse(_ text: String) throws(ExecutorError) -> [HAProxyServerState] {
        let lines = text.split(separator: "\n").map { ExecText.trim($0) }.filter { !$0.isEmpty }
        guard let header = lines.first(where: { $0.hasPrefix("# ") }) else {
            throw ExecutorError(
                "haproxy-canary", "show servers state: unexpected answer \(JSONValue.quote(String(text.prefix(200))))")
        }
        let columns = ExecText.fields(String(header.dropFirst(2)))
        func index(_ name: String) throws(ExecutorError) -> Int {
            guard let i = columns.firstIndex(of: name) else {
                throw ExecutorError(
                    "haproxy-canary", "show servers state: no column \(name) in \(JSONValue.quote(header))")
            }
            return i
        }
        let be = try index("be_name"), srv = try index("srv_name"), addr = try index("srv_addr")
        let op = try index("srv_op_state"), admin = try index("srv_admin_state"), weight = try index("srv_uweight")
        var out: [HAProxyServerState] = []
        for line in lines where !line.hasPrefix("#") {
            let f = ExecText.fields(line)
            if f.count == 1 { continue } // the format version line
            guard f.count > max(be, srv, addr, op, admin, weight), let o = Int(f[op]), let a = Int(f[admin]),
                let w = Int(f[weight])
            else {
                throw ExecutorError("haproxy-canary", "show servers state: cannot read line \(JSONValue.quote(line))")
            }
            out.append(
                HAProxyServerState(
                    backend: f[be], server: f[srv], address: f[addr], operationalState: o,
                    adminState: a, userWeight: w))
        }
        return out
    }
}

/// HAProxy canary: through the runtime API socket, drain the canary server (`state drain`: no new requests,
/// established ones finish) or set its weight to 0, then confirm with `show servers state`. Both commands are
/// idempotent. HAProxy does not know release versions, so `version` in thresholds.json must be a URL or a file.
///
/// In a plan, a `restore` schedule (weight mode) gives the traffic back after every step ran: each stage sets the
/// canary's weight (`restore-<w>`, confirmed with `show servers state`) and holds it while the triggers watch
/// (`hold-<w>`, run by the runner); a trigger firing sets the weight back to 0.
public struct HAProxyCanaryExecutor: RollbackExecutor {
    public let config: HAProxyCanaryStrategy
    public let phaseTimeout: Interval
    public let restore: [RestoreStage]
    public var strategyName: String { "haproxy-canary" }

    public init(_ config: HAProxyCanaryStrategy, phaseTimeout: Interval, restore: [RestoreStage] = []) {
        self.config = config
        self.phaseTimeout = phaseTimeout
        self.restore = restore
    }

    var server: String { "\(config.backend)/\(config.canaryServer)" }

    /// The restore schedule's phases, which a plan runs after every step's own phases.
    public func restorePhases() -> [RollbackPhase] {
        var phases: [RollbackPhase] = []
        for (i, stage) in restore.enumerated() {
            let of = "stage \(i + 1)/\(restore.count)"
            phases.append(
                RollbackPhase(
                    name: "restore-\(stage.weight)",
                    description:
                        "\(of): send \(JSONValue.quote("set server \(server) weight \(stage.weight)")) to \(config.socket); show servers state confirms weight \(stage.weight)",
                    timeout: phaseTimeout))
            if let hold = stage.hold {
                phases.append(
                    RollbackPhase(
                        name: "hold-\(stage.weight)",
                        description:
                            "\(of): hold weight \(stage.weight) for \(hold) while the triggers watch; a firing trigger sets \(server) back to weight 0 and fails the rollback",
                        timeout: hold + phaseTimeout, hold: hold))
            }
        }
        return phases
    }

    /// Sets the canary's weight and confirms it on the runtime socket.
    func setWeight(_ weight: Int, timeout: Interval) async throws {
        let command = "set server \(server) weight \(weight)"
        let answer = ExecText.trim(try await HAProxyRuntimeAPI.send(command, socket: config.socket, timeout: timeout))
        guard answer.isEmpty else { throw fail("\(config.socket): \(command): \(answer)") }
        let all = try await servers()
        guard let canary = all.first(where: { $0.server == config.canaryServer }) else {
            throw fail("backend \(config.backend) has no server \(config.canaryServer)")
        }
        guard canary.userWeight == weight else {
            throw fail("\(server) has weight \(canary.userWeight) after \(JSONValue.quote(command)), not \(weight)")
        }
    }

    public func drainAgain(after hold: RollbackPhase, of plan: RollbackPlan) async throws -> String {
        try await setWeight(0, timeout: phaseTimeout)
        return "\(server) is back at weight 0"
    }

    func fail(_ message: String) -> ExecutorError { ExecutorError(strategyName, message) }

    public func currentVersion() async throws -> String { throw ExecutorError.versionUnknown(strategyName) }
    public func availableVersions() async throws -> [String] { [] }

    var drainCommand: String {
        config.mode == "weight"
            ? "set server \(config.backend)/\(config.canaryServer) weight 0"
            : "set server \(config.backend)/\(config.canaryServer) state drain"
    }

    public func servers() async throws(ExecutorError) -> [HAProxyServerState] {
        let answer = try await HAProxyRuntimeAPI.send(
            "show servers state \(config.backend)", socket: config.socket, timeout: phaseTimeout)
        if answer.contains("Can't find backend") || answer.contains("Unknown command") {
            throw fail("\(config.socket): show servers state \(config.backend): \(ExecText.trim(answer))")
        }
        return try HAProxyServerState.parse(answer).filter { $0.backend == config.backend }
    }

    public func precheck(target: String) async throws {
        let all = try await servers()
        guard let canary = all.first(where: { $0.server == config.canaryServer }) else {
            throw fail(
                "backend \(config.backend) has no server \(config.canaryServer) (servers: \(all.map(\.server).joined(separator: ", ")))"
            )
        }
        _ = canary
        let others = all.filter { $0.server != config.canaryServer && $0.takesNewRequests }
        guard !others.isEmpty else {
            throw fail(
                "draining \(config.backend)/\(config.canaryServer) would leave backend \(config.backend) with no server taking requests"
            )
        }
    }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        RollbackPlan(
            strategy: strategyName, from: from, to: to, incident: incident,
            phases: [
                RollbackPhase(
                    name: "drain", description: "send \(JSONValue.quote(drainCommand)) to \(config.socket)",
                    timeout: phaseTimeout),
                RollbackPhase(
                    name: "confirm",
                    description:
                        "show servers state \(config.backend): \(config.canaryServer) is \(config.mode == "weight" ? "at weight 0" : "draining") and another server takes requests",
                    timeout: phaseTimeout),
            ])
    }

    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        switch phase.name {
        case "drain":
            let answer = ExecText.trim(
                try await HAProxyRuntimeAPI.send(drainCommand, socket: config.socket, timeout: phase.timeout))
            // Success is an empty answer; errors are text such as "No such server." or "Permission denied".
            guard answer.isEmpty else { throw fail("\(config.socket): \(drainCommand): \(answer)") }
        case "confirm":
            let all = try await servers()
            guard let canary = all.first(where: { $0.server == config.canaryServer }) else {
                throw fail("backend \(config.backend) has no server \(config.canaryServer)")
            }
            if config.mode == "weight" {
                guard canary.userWeight == 0 else {
                    throw fail("\(config.backend)/\(config.canaryServer) still has weight \(canary.userWeight)")
                }
            } else {
                guard canary.draining || canary.inMaintenance else {
                    throw fail(
                        "\(config.backend)/\(config.canaryServer) is not draining (srv_admin_state \(canary.adminState))"
                    )
                }
            }
            guard all.contains(where: { $0.server != config.canaryServer && $0.takesNewRequests }) else {
                throw fail("backend \(config.backend) has no other server taking requests")
            }
        case let name where name.hasPrefix("restore-"):
            guard let w = Int(name.dropFirst("restore-".count)), restore.contains(where: { $0.weight == w }) else {
                throw fail("unknown phase \(phase.name)")
            }
            try await setWeight(w, timeout: phase.timeout)
        default:
            throw fail("unknown phase \(phase.name)")
        }
    }
}
