import FoundationEssentials
import RollbackCore
import RollbackSystem

/// This host's link to the fleet in etcd: its lease, its report, the leader key and the fenced writes. Every etcd
/// request of fleet mode goes through here; the decisions about what to do with the answers are `FleetMember`'s.
actor FleetLink {
    let config: FleetConfig
    let host: String
    let keys: FleetKeys
    let client: EtcdClient
    private(set) var lease: Int64?
    private var renewedAtMs: Int64 = 0
    /// While this host holds the leader key: its creation revision, the token every fenced write checks.
    private(set) var token: Int64?

    init(config: FleetConfig, host: String, requestTimeout: Interval) {
        self.config = config
        self.host = host
        self.keys = FleetKeys(fleet: config.name)
        self.client = EtcdClient(endpoints: config.endpoints, tls: config.tls, requestTimeout: requestTimeout)
    }

    private var ttlSeconds: Int { Int(config.leaseTTL.milliseconds / 1000) }

    /// A live lease: granted when there is none, renewed when a third of the TTL has passed. A lease that expired
    /// (this host was paused or cut off longer than the TTL) is replaced, and leadership is lost with it.
    func ensureLease() async throws(EtcdError) -> Int64 {
        let now = SystemTime.monotonicMs()
        if let id = lease {
            if now - renewedAtMs < config.leaseTTL.milliseconds / 3 { return id }
            do {
                _ = try await client.keepAlive(lease: id)
                renewedAtMs = now
                return id
            } catch {
                guard case .leaseExpired = error.kind else { throw error }
                lease = nil
                token = nil
            }
        }
        let granted = try await client.grantLease(ttlSeconds: ttlSeconds)
        lease = granted.id
        renewedAtMs = SystemTime.monotonicMs()
        return granted.id
    }

    /// How long since the lease was last confirmed; past the TTL etcd has dropped it (and our leadership).
    var leaseAgeMs: Int64 { lease == nil ? .max : SystemTime.monotonicMs() - renewedAtMs }

    func publish(_ report: HostReport) async throws(EtcdError) {
        let id = try await ensureLease()
        _ = try await client.put(keys.host(host), try Self.encode(report), lease: id)
    }

    struct Control: Sendable {
        var leader: String?
        var leaderToken: Int64?
        var decision: FleetDecision?
        var decisionRevision: Int64?
    }

    func readControl() async throws(EtcdError) -> Control {
        let (kvs, _) = try await client.getPrefix(keys.control)
        var c = Control()
        for kv in kvs {
            if kv.key == keys.leader {
                c.leader = kv.text
                c.leaderToken = kv.createRevision
            } else if kv.key == keys.decision {
                c.decision = try Self.decode(FleetDecision.self, kv, client: client)
                c.decisionRevision = kv.modRevision
            }
        }
        if let kv = kvs.first(where: { $0.key == keys.leader }), kv.text == host {
            // The key is ours when it is bound to our live lease: a reply lost after the campaign committed, or a
            // lease etcd kept through its own outage. Otherwise it is a previous daemon's, expiring.
            if let id = lease, kv.lease == id {
                token = kv.createRevision
            } else if token != kv.createRevision {
                token = nil
            }
        }
        return c
    }

    /// Tries to become the leader: creates the leader key under this host's lease if nobody holds it. Returns the
    /// token when this host won.
    func campaign() async throws(EtcdError) -> Int64? {
        let id = try await ensureLease()
        let r = try await client.txn(
            compare: [.createRevision(keys.leader, equals: 0)], success: [.put(keys.leader, host, lease: id)],
            failure: [])
        guard r.succeeded else { return nil }
        token = r.revision
        return r.revision
    }

    /// Gives leadership up (on a clean stop, so that another host takes over at once, not after the TTL).
    func resign() async {
        if let t = token {
            _ = try? await client.txn(
                compare: [.createRevision(keys.leader, equals: t)], success: [.delete(keys.leader)], failure: [])
        }
        token = nil
        if let id = lease { try? await client.revoke(lease: id) }
        lease = nil
    }

    func stepDown() { token = nil }

    func readHosts() async throws(EtcdError) -> [HostReport] {
        let (kvs, _) = try await client.getPrefix(keys.hosts)
        var reports: [HostReport] = []
        for kv in kvs {
            // One host's unreadable report must not blind the fleet: it is skipped (and the host reads as absent).
            if let r = try? Self.decode(HostReport.self, kv, client: client) { reports.append(r) }
        }
        return reports
    }

    func readState() async throws(EtcdError) -> EngineState? {
        guard let kv = try await client.get(keys.state) else { return nil }
        return try Self.decode(EngineState.self, kv, client: client)
    }

    func readRuns(_ order: RollbackOrder) async throws(EtcdError) -> [String: HostRun] {
        let (kvs, _) = try await client.getPrefix(keys.runs(order))
        var runs: [String: HostRun] = [:]
        for kv in kvs {
            if let r = try? Self.decode(HostRun.self, kv, client: client) { runs[r.host] = r }
        }
        return runs
    }

    /// Writes the fleet state (and a new decision) only if this host still holds the leader key it won. False: the
    /// write was refused, another host leads now.
    func writeFenced(state: EngineState, decision: FleetDecision?) async throws(EtcdError) -> Bool {
        guard let t = token else { return false }
        var ops: [EtcdOp] = [.put(keys.state, value: try Self.encode(state), lease: nil)]
        if let decision { ops.append(.put(keys.decision, value: try Self.encode(decision), lease: nil)) }
        let r = try await client.txn(
            compare: [.createRevision(keys.leader, equals: t), .value(keys.leader, equals: host)], success: ops,
            failure: [])
        if !r.succeeded { token = nil }
        return r.succeeded
    }

    func reportRun(_ run: HostRun, of order: RollbackOrder) async throws(EtcdError) {
        _ = try await client.put(keys.run(order, host: host), try Self.encode(run), lease: nil)
    }

    // MARK: JSON

    static func encode(_ value: some Encodable) throws(EtcdError) -> [UInt8] {
        do { return Array(try StateStore.encoder.encode(value)) } catch {
            throw EtcdError(
                endpoint: "", path: "encode", kind: .malformed("cannot encode \(type(of: value)): \(error)"))
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ kv: EtcdKeyValue, client: EtcdClient) throws(EtcdError) -> T {
        do { return try StateStore.decoder.decode(T.self, from: Data(kv.value)) } catch {
            throw EtcdError(
                endpoint: client.endpoints.joined(separator: ","), path: kv.key,
                kind: .malformed("\(kv.key) is not a rollbackd \(T.self) record: \(error)"))
        }
    }
}
