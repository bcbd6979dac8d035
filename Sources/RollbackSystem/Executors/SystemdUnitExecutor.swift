#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// systemd template units: `app@<bad>.service` → `app@<good>.service`. Start the good instance, wait until it is
/// active, stop the bad one, and (with `persist`, the default) enable the good and disable the bad so a reboot keeps
/// the rollback. Every step is idempotent in systemctl itself (starting an active unit, stopping a stopped one).
public struct SystemdUnitExecutor: RollbackExecutor {
    public let config: SystemdUnitStrategy
    public let phaseTimeout: Interval
    public var strategyName: String { "systemd-unit" }
    /// How often `wait-active` asks `systemctl is-active`.
    public var pollInterval: Interval = .ms(250)

    public init(_ config: SystemdUnitStrategy, phaseTimeout: Interval) {
        self.config = config
        self.phaseTimeout = phaseTimeout
    }

    func fail(_ message: String) -> ExecutorError { ExecutorError(strategyName, message) }

    /// `systemctl ARGS…` as run.
    public func argv(_ args: String...) -> [String] { [config.systemctl] + args }

    /// The active instances of the template (`systemctl list-units`), e.g. `["1.4.2"]`.
    public func activeInstances() async throws(ExecutorError) -> [String] {
        let args = argv(
            "list-units", "--type=service", "--state=active", "--plain", "--no-legend", "--no-pager",
            "\(config.template)*.service")
        let r = try await Command.run(args, strategy: strategyName, timeout: phaseTimeout)
        return Self.parseListUnits(r.stdoutText, template: config.template)
    }

    /// Instance names from `list-units --plain --no-legend` lines (`app@1.4.2.service loaded active running …`).
    static func parseListUnits(_ text: String, template: String) -> [String] {
        ExecText.lines(text).compactMap { line in
            guard let unit = ExecText.fields(line).first, unit.hasPrefix(template), unit.hasSuffix(".service") else {
                return nil
            }
            let instance = unit.dropFirst(template.count).dropLast(".service".count)
            return instance.isEmpty ? nil : String(instance)
        }
    }

    public func currentVersion() async throws -> String {
        let active = try await activeInstances()
        guard active.count == 1, let v = active.first else {
            if active.isEmpty { throw fail("no instance of \(config.template)*.service is active") }
            throw fail("several instances of \(config.template)*.service are active: \(active.joined(separator: ", "))")
        }
        return v
    }

    /// systemd cannot list the instances a template could run.
    public func availableVersions() async throws -> [String] { [] }

    public func precheck(target: String) async throws {
        guard Paths.isSafeComponent(target), !target.hasPrefix("-") else {
            throw fail("\(JSONValue.quote(target)) is not an instance name")
        }
        let args = argv("show", "--property=LoadState", "--value", config.unit(target))
        let r = try await Command.run(args, strategy: strategyName, timeout: phaseTimeout)
        let state = ExecText.trim(r.stdoutText)
        guard state == "loaded" else {
            throw fail(
                "\(config.unit(target)) cannot be started: LoadState=\(state.isEmpty ? "?" : state) (\(ProcessRunner.display(args)))"
            )
        }
    }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        let good = config.unit(to), bad = config.unit(from)
        var phases = [
            RollbackPhase(
                name: "start-good", description: "run \(ProcessRunner.display(argv("start", good)))",
                timeout: phaseTimeout),
            RollbackPhase(
                name: "wait-active", description: "poll \(ProcessRunner.display(argv("is-active", good))) until active",
                timeout: config.activeTimeout),
            RollbackPhase(
                name: "stop-bad", description: "run \(ProcessRunner.display(argv("stop", bad)))", timeout: phaseTimeout),
        ]
        if config.persist {
            phases.append(
                RollbackPhase(
                    name: "enable-good", description: "run \(ProcessRunner.display(argv("enable", good)))",
                    timeout: phaseTimeout))
            phases.append(
                RollbackPhase(
                    name: "disable-bad", description: "run \(ProcessRunner.display(argv("disable", bad)))",
                    timeout: phaseTimeout))
        }
        return RollbackPlan(strategy: strategyName, from: from, to: to, incident: incident, phases: phases)
    }

    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        let good = config.unit(plan.to), bad = config.unit(plan.from)
        switch phase.name {
        case "start-good":
            _ = try await Command.run(argv("start", good), strategy: strategyName, timeout: phase.timeout)
        case "wait-active": try await waitActive(good, timeout: phase.timeout)
        case "stop-bad": _ = try await Command.run(argv("stop", bad), strategy: strategyName, timeout: phase.timeout)
        case "enable-good":
            _ = try await Command.run(argv("enable", good), strategy: strategyName, timeout: phase.timeout)
        case "disable-bad":
            _ = try await Command.run(argv("disable", bad), strategy: strategyName, timeout: phase.timeout)
        default: throw fail("unknown phase \(phase.name)")
        }
    }

    /// `is-active` prints active, activating, failed, inactive… (and exits non-zero unless active).
    func waitActive(_ unit: String, timeout: Interval) async throws(ExecutorError) {
        let deadline = ContinuousClock.now + .milliseconds(timeout.milliseconds)
        var last = ""
        while true {
            let args = argv("is-active", unit)
            let r = try await Command.output(args, strategy: strategyName, timeout: .seconds(10))
            last = ExecText.trim(r.stdoutText)
            if r.succeeded && last == "active" { return }
            if last == "failed" { throw fail("\(unit) failed to start (\(ProcessRunner.display(args)) says failed)") }
            if last.isEmpty, !r.succeeded, !r.stderrText.isEmpty {
                throw fail("\(ProcessRunner.display(args)): \(r.summary(timeout: .seconds(10)))")
            }
            if ContinuousClock.now >= deadline { break }
            try? await Task.sleep(for: .milliseconds(pollInterval.milliseconds))
        }
        throw fail("\(unit) is not active after \(timeout) (last state: \(last.isEmpty ? "unknown" : last))")
    }
}
