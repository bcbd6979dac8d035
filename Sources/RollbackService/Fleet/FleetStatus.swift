import RollbackCore
import RollbackSystem

/// `rollbackd fleet status`: the fleet as etcd holds it, read directly (it works while this host's daemon is down):
/// the leader, every live host with its version, the age of its last report and its last evidence, the standing
/// decision and how each host's part of it went.
public struct FleetStatus: Sendable {
    public var fleet: String
    public var leader: String?
    public var hosts: [HostReport]
    public var decision: FleetDecision?
    public var runs: [String: HostRun]
    public var openIncidents: [Incident]
    public var halted: HaltState?
    public var at: Timestamp

    /// Reads the fleet's keys (three requests).
    public static func read(_ config: FleetConfig, now: Timestamp) async throws(EtcdError) -> FleetStatus {
        let link = FleetLink(
            config: config, host: config.host ?? WebhookPayload.hostName(), requestTimeout: .seconds(3))
        let control = try await link.readControl()
        let hosts = try await link.readHosts()
        let state = try await link.readState()
        var runs: [String: HostRun] = [:]
        if let d = control.decision { runs = try await link.readRuns(d.order) }
        return FleetStatus(
            fleet: config.name, leader: control.leader, hosts: hosts.sorted { $0.host < $1.host },
            decision: control.decision, runs: runs, openIncidents: state?.openIncidents ?? [], halted: state?.halted,
            at: now)
    }

    /// The counts of a host's newest tick, `errors 3 of 40, latency 1 of 40`.
    static func evidence(_ r: HostReport) -> String {
        guard let t = r.ticks.last, !t.counts.isEmpty else { return "no counts yet" }
        return t.counts.keys.sorted().map { "\($0) \(t.counts[$0]!)" }.joined(separator: ", ")
    }

    public var text: String {
        var out = "fleet \(fleet): leader \(leader ?? "none (no host holds the leader key)"), \(hosts.count) hosts\n"
        if hosts.isEmpty { out += "  no host reports (every lease expired, or no daemon runs with this fleet)\n" }
        for r in hosts {
            let age = Double(max(0, (at - r.at).milliseconds)) / 1000
            let role = r.host == leader ? " [leader]" : ""
            var line = "  \(r.host)\(role): \(r.version ?? "version unknown (\(r.versionReason ?? "?"))")"
            line +=
                ", last report \(JSONValue.format(number: (age * 10).rounded() / 10))s ago, last tick: \(Self.evidence(r))"
            if let i = r.running { line += ", carrying out incident \(i)" }
            out += line + "\n"
        }
        if let d = decision {
            out +=
                "standing decision: incident \(d.order.incident) \(d.order.from) -> \(d.order.to), by \(d.leader) at \(d.order.orderedAt)\n"
            for h in d.participants {
                let run = runs[h].map { "\($0.state.rawValue)\($0.phase.map { " (\($0))" } ?? ""): \($0.detail)" }
                out += "  \(h): \(run ?? "not reported yet")\n"
            }
        } else {
            out += "no decision: no rollback was decided for this fleet\n"
        }
        for i in openIncidents { out += "open incident \(i.id): \(i.status.rawValue)\n" }
        if let h = halted { out += "halted since \(h.at): \(h.reason)\n" }
        return out
    }

    public var json: JSONValue {
        .object([
            ("fleet", .string(fleet)),
            ("leader", leader.map { .string($0) } ?? .null),
            (
                "hosts",
                .array(
                    hosts.map { r in
                        .object([
                            ("host", .string(r.host)), ("version", r.version.map { .string($0) } ?? .null),
                            ("lastReport", .string(r.at.iso8601)),
                            ("lastReportAgeSeconds", .number(Double(max(0, (at - r.at).milliseconds)) / 1000)),
                            ("lastTick", .string(Self.evidence(r))),
                            ("running", r.running.map { .string($0) } ?? .null),
                        ])
                    })
            ),
            (
                "decision",
                decision.map { d in
                    .object([
                        ("incident", .string(d.order.incident)), ("from", .string(d.order.from)),
                        ("to", .string(d.order.to)), ("leader", .string(d.leader)),
                        ("participants", .array(d.participants.map { .string($0) })),
                        (
                            "runs",
                            .object(
                                runs.keys.sorted().map { h in
                                    (
                                        h,
                                        .object([
                                            ("state", .string(runs[h]!.state.rawValue)),
                                            ("detail", .string(runs[h]!.detail)),
                                        ])
                                    )
                                })
                        ),
                    ])
                } ?? .null
            ),
            ("openIncidents", .array(openIncidents.map { .string($0.id) })),
            ("halted", halted.map { .string($0.reason) } ?? .null),
        ])
    }
}
