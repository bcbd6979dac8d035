import RollbackCore

/// Docker swarm: `docker service update --rollback SERVICE` (back to the service's previous spec), or with `image`
/// set `docker service update --image IMAGE:<version> SERVICE`. Versions are image tags.
///
/// Idempotency: `--rollback` run twice rolls back the rollback, so the update phase first reads the service's
/// image and sends nothing when it already runs the target tag.
public struct DockerSwarmExecutor: RollbackExecutor {
    public let config: DockerSwarmStrategy
    public let phaseTimeout: Interval
    public var strategyName: String { "docker-swarm" }

    public init(_ config: DockerSwarmStrategy, phaseTimeout: Interval) {
        self.config = config
        self.phaseTimeout = phaseTimeout
    }

    func fail(_ message: String) -> ExecutorError { ExecutorError(strategyName, message) }

    /// The tag of an image reference: `reg:5000/app:1.4.2@sha256:…` → `1.4.2`; no tag → `latest`.
    public static func tag(of image: String) -> String {
        var ref = Substring(image)
        if let at = ref.firstIndex(of: "@") { ref = ref[..<at] }
        if let colon = ref.lastIndex(of: ":"), !ref[colon...].contains("/") {
            return String(ref[ref.index(after: colon)...])
        }
        return "latest"
    }

    static let inspectFormat =
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}|{{if .PreviousSpec}}{{.PreviousSpec.TaskTemplate.ContainerSpec.Image}}{{end}}|{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}"

    public var inspectArgv: [String] {
        [config.docker, "service", "inspect", "--format", Self.inspectFormat, config.service]
    }

    public struct ServiceState: Sendable, Equatable {
        public var image: String
        public var previousImage: String?
        public var updateState: String?
    }

    static func parseInspect(_ text: String) throws(ExecutorError) -> ServiceState {
        let line = ExecText.trim(text)
        let parts = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, !parts[0].isEmpty else {
            throw ExecutorError(
                "docker-swarm", "docker service inspect: unexpected answer \(JSONValue.quote(String(line.prefix(200))))"
            )
        }
        return ServiceState(
            image: parts[0], previousImage: parts[1].isEmpty ? nil : parts[1],
            updateState: parts[2].isEmpty ? nil : parts[2])
    }

    public func state() async throws(ExecutorError) -> ServiceState {
        let r = try await Command.run(inspectArgv, strategy: strategyName, timeout: phaseTimeout)
        return try Self.parseInspect(r.stdoutText)
    }

    public func currentVersion() async throws -> String { Self.tag(of: try await state().image) }

    /// The previous spec's tag (where `--rollback` goes), when there is one.
    public func availableVersions() async throws -> [String] {
        try await state().previousImage.map { [Self.tag(of: $0)] } ?? []
    }

    /// `docker image inspect` (the image is on this node) and `docker manifest inspect` (it is in its registry).
    public func imageArgvs(_ reference: String) -> [[String]] {
        [
            [config.docker, "image", "inspect", "--format", "{{.Id}}", reference],
            [config.docker, "manifest", "inspect", reference],
        ]
    }

    /// A tag to roll to must name an image that exists, on this node or in its registry: otherwise the update
    /// would start tasks that can never run and pause half-way.
    func checkImageExists(_ reference: String) async throws(ExecutorError) {
        var answers: [String] = []
        for argv in imageArgvs(reference) {
            let r = try await Command.output(argv, strategy: strategyName, timeout: phaseTimeout)
            if r.succeeded { return }
            answers.append("\(ProcessRunner.display(argv)): \(r.summary(timeout: phaseTimeout))")
        }
        throw fail(
            "image \(reference) does not exist on this node or in its registry (\(answers.joined(separator: "; ")))")
    }

    public func precheck(target: String) async throws {
        let s = try await state()
        // Already there (a rollback run again, or resumed after its update): the update phase sends nothing. Asking
        // where --rollback would go now would point back at the release rolled back from.
        if Self.tag(of: s.image) == target { return }
        if let image = config.image {
            guard !target.isEmpty, !target.contains("/"), !target.contains("@") else {
                throw fail("\(JSONValue.quote(target)) is not an image tag")
            }
            try await checkImageExists("\(image):\(target)")
            return
        }
        guard let previous = s.previousImage else {
            throw fail(
                "service \(config.service) has no previous spec, so --rollback has nowhere to go; set docker-swarm.image to roll to a chosen tag"
            )
        }
        guard Self.tag(of: previous) == target else {
            throw fail(
                "docker service update --rollback would go to \(previous), not \(target); set docker-swarm.image to roll to a chosen tag"
            )
        }
    }

    public func updateArgv(to: String) -> [String] {
        if let image = config.image {
            return [config.docker, "service", "update", "--detach=false", "--image", "\(image):\(to)", config.service]
        }
        return [config.docker, "service", "update", "--detach=false", "--rollback", config.service]
    }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        RollbackPlan(
            strategy: strategyName, from: from, to: to, incident: incident,
            phases: [
                RollbackPhase(
                    name: "update",
                    description:
                        "run \(ProcessRunner.display(updateArgv(to: to))) (skipped when the service already runs \(to))",
                    timeout: phaseTimeout),
                RollbackPhase(
                    name: "confirm",
                    description: "run \(ProcessRunner.display(inspectArgv)): image tag is \(to), update not paused",
                    timeout: phaseTimeout),
            ])
    }

    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        switch phase.name {
        case "update":
            let s = try await state()
            if Self.tag(of: s.image) == plan.to { return }
            _ = try await Command.run(updateArgv(to: plan.to), strategy: strategyName, timeout: phase.timeout)
        case "confirm":
            let s = try await state()
            guard Self.tag(of: s.image) == plan.to else {
                throw fail("service \(config.service) runs \(s.image), not \(plan.to)")
            }
            if let u = s.updateState, u.contains("paused") {
                throw fail("service \(config.service) update state is \(u)")
            }
        default:
            throw fail("unknown phase \(phase.name)")
        }
    }
}
