/// Where this host stands in the fleet, for `status` and `/metrics`.
public struct FleetStanding: Sendable, Equatable {
    public enum Role: String, Sendable, CaseIterable { case leader, follower, partitioned }
    public var fleet: String
    public var host: String
    public var role: Role
    public var leader: String?
    /// Why etcd cannot be used (partitioned only).
    public var reason: String?
    public var hosts: Int

    public init(fleet: String, host: String, role: Role, leader: String?, reason: String?, hosts: Int) {
        self.fleet = fleet
        self.host = host
        self.role = role
        self.leader = leader
        self.reason = reason
        self.hosts = hosts
    }

    public var json: JSONValue {
        .object([
            ("fleet", .string(fleet)), ("host", .string(host)), ("role", .string(role.rawValue)),
            ("leader", leader.map { .string($0) } ?? .null), ("reason", reason.map { .string($0) } ?? .null),
            ("hosts", .number(Double(hosts))),
        ])
    }

    public var line: String {
        switch role {
        case .leader: return "fleet \(fleet): leader (\(hosts) hosts)"
        case .follower: return "fleet \(fleet): follower of \(leader ?? "no leader yet")"
        case .partitioned: return "fleet \(fleet): partitioned from etcd, never acting alone"
        }
    }
}
