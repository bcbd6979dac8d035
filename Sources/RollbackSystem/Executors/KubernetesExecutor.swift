import RollbackCore

/// One line of `kubectl rollout history deployment/NAME`.
public struct KubeRevision: Sendable, Equatable {
    public var number: Int
    /// The CHANGE-CAUSE column; nil for `<none>`.
    public var changeCause: String?
}

/// Parses `kubectl rollout history` output:
///
///     deployment.apps/web
///     REVISION  CHANGE-CAUSE
///     1         <none>
///     2         kubectl set image deployment/web web=web:1.4.2
public enum KubectlRolloutHistory {
    public static func parse(_ text: String) throws(ExecutorError) -> [KubeRevision] {
        let lines = text.split(separator: "\n").map { ExecText.trim($0) }
        guard let header = lines.firstIndex(where: { ExecText.fields($0).first == "REVISION" }) else {
            throw ExecutorError(
                "kubernetes",
                "kubectl rollout history: no REVISION header in \(JSONValue.quote(String(text.prefix(200))))")
        }
        var out: [KubeRevision] = []
        for line in lines[(header + 1)...] where !line.isEmpty {
            let f = ExecText.fields(line)
            guard let first = f.first, let n = Int(first), n > 0 else {
                throw ExecutorError("kubernetes", "kubectl rollout history: cannot read line \(JSONValue.quote(line))")
            }
            let cause = ExecText.trim(line.dropFirst(first.count))
            out.append(KubeRevision(number: n, changeCause: cause.isEmpty || cause == "<none>" ? nil : cause))
        }
        return out.sorted { $0.number < $1.number }
    }
}

/// Kubernetes: `kubectl rollout undo deployment/NAME [-n NS] --to-revision=N`, then `kubectl rollout status
/// --timeout`. Versions are deployment revision numbers as `kubectl rollout history` shows them.
///
/// Idempotency: Kubernetes renumbers the restored revision (revision N becomes the newest and N disappears from
/// the history), so running the undo twice would fail or undo the undo. Before undoing, the phase reads the history:
/// when the newest revision is no longer the plan's `from` and `to` is gone, the undo already happened and nothing
/// is sent; when the deployment moved some other way, the phase refuses.
public struct KubernetesExecutor: RollbackExecutor {
    public let config: KubernetesStrategy
    public let phaseTimeout: Interval
    public var strategyName: String { "kubernetes" }

    public init(_ config: KubernetesStrategy, phaseTimeout: Interval) {
        self.config = config
        self.phaseTimeout = phaseTimeout
    }

    func fail(_ message: String) -> ExecutorError { ExecutorError(strategyName, message) }

    var resource: String { "deployment/\(config.deployment)" }

    /// `kubectl [--context C] rollout VERB deployment/NAME [-n NS] EXTRA…`.
    public func argv(_ verb: String, _ extra: [String] = []) -> [String] {
        var a = [config.kubectl]
        if let ctx = config.context { a += ["--context", ctx] }
        a += ["rollout", verb, resource]
        if let ns = config.namespace { a += ["-n", ns] }
        return a + extra
    }

    public func history() async throws(ExecutorError) -> [KubeRevision] {
        let r = try await Command.run(argv("history"), strategy: strategyName, timeout: phaseTimeout)
        let revisions = try KubectlRolloutHistory.parse(r.stdoutText)
        guard !revisions.isEmpty else { throw fail("\(ProcessRunner.display(argv("history"))): no revisions") }
        return revisions
    }

    /// The newest revision number.
    public func currentVersion() async throws -> String {
        guard let last = try await history().last else { throw fail("no revisions") }
        return String(last.number)
    }

    /// Revision numbers, newest first.
    public func availableVersions() async throws -> [String] {
        try await history().reversed().map { String($0.number) }
    }

    public func precheck(target: String) async throws {
        guard let n = Int(target), n > 0 else { throw fail("\(JSONValue.quote(target)) is not a revision number") }
        let revisions = try await history()
        guard revisions.contains(where: { $0.number == n }) else {
            throw fail(
                "\(resource) has no revision \(n) (history: \(revisions.map { String($0.number) }.joined(separator: ", ")))"
            )
        }
        if revisions.last?.number == n { throw fail("revision \(n) is already the newest revision of \(resource)") }
    }

    public func undoArgv(to: String) -> [String] { argv("undo", ["--to-revision=\(to)"]) }
    public var statusArgv: [String] { argv("status", ["--timeout=\(config.statusTimeout)"]) }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        RollbackPlan(
            strategy: strategyName, from: from, to: to, incident: incident,
            phases: [
                RollbackPhase(
                    name: "undo",
                    description:
                        "run \(ProcessRunner.display(undoArgv(to: to))) (skipped when the history shows it already happened)",
                    timeout: phaseTimeout),
                RollbackPhase(
                    name: "status", description: "run \(ProcessRunner.display(statusArgv))",
                    timeout: config.statusTimeout + .seconds(10)),
            ])
    }

    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        switch phase.name {
        case "undo":
            let revisions = try await history()
            let newest = revisions.last?.number
            let targetPresent = revisions.contains { String($0.number) == plan.to }
            if let newest, String(newest) != plan.from {
                if !targetPresent { return } // already undone: revision `to` became `newest`
                throw fail(
                    "\(resource) moved from revision \(plan.from) to \(newest) since the plan was made; not undoing")
            }
            _ = try await Command.run(undoArgv(to: plan.to), strategy: strategyName, timeout: phase.timeout)
        case "status":
            _ = try await Command.run(statusArgv, strategy: strategyName, timeout: phase.timeout)
        default:
            throw fail("unknown phase \(phase.name)")
        }
    }
}
