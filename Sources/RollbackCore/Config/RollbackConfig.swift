public struct RollbackConfig: Sendable, Equatable {
    /// The plan, in order: one step for `rollback.strategy`, or the `rollback.steps` list.
    public var steps: [RollbackStep]
    /// Written as `rollback.steps` (a plan: phases are journaled per step), not as `rollback.strategy`.
    public var isPlan: Bool
    /// Each phase of a rollback is stopped and failed after this long.
    public var phaseTimeout: Interval
    /// Run before an automatic rollback with ROLLBACKD_BACKUP_NAME=pre-rollback-<UTC timestamp>.
    public var backup: [String]?
    /// Migrations directory of a release: relative to the symlink strategy's `releasesDir/<version>`, or an
    /// absolute path containing `{version}`. When the current release has migrations the target lacks, an
    /// automatic rollback is demoted to semi unless `migrationsCompatible` is true.
    public var migrationsDir: String?
    public var migrationsCompatible: Bool
    /// Choose targets among git tags (`git tag --sort=-version:refname`) that are also known-good.
    public var gitTagsRepo: String?
    /// Critical endpoints checked (2xx) during verification.
    public var smokeURLs: [String]

    public init(
        strategy: RollbackStrategy, phaseTimeout: Interval = .seconds(60), backup: [String]? = nil,
        migrationsDir: String? = nil, migrationsCompatible: Bool = false, gitTagsRepo: String? = nil,
        smokeURLs: [String] = []
    ) {
        self.init(
            steps: [RollbackStep(strategy)], isPlan: false, phaseTimeout: phaseTimeout, backup: backup,
            migrationsDir: migrationsDir, migrationsCompatible: migrationsCompatible, gitTagsRepo: gitTagsRepo,
            smokeURLs: smokeURLs)
    }

    public init(
        steps: [RollbackStep], isPlan: Bool = true, phaseTimeout: Interval = .seconds(60), backup: [String]? = nil,
        migrationsDir: String? = nil, migrationsCompatible: Bool = false, gitTagsRepo: String? = nil,
        smokeURLs: [String] = []
    ) {
        self.steps = steps
        self.isPlan = isPlan
        self.phaseTimeout = phaseTimeout
        self.backup = backup
        self.migrationsDir = migrationsDir
        self.migrationsCompatible = migrationsCompatible
        self.gitTagsRepo = gitTagsRepo
        self.smokeURLs = smokeURLs
    }

    /// The step whose strategy tells the live version: the one marked `version: true`, else the first application
    /// step (symlink, systemd-unit, kubernetes, docker-swarm, nginx-blue-green, haproxy-canary), else the first.
    public var versionStepIndex: Int {
        steps.firstIndex(where: \.version) ?? steps.firstIndex(where: \.isApplication) ?? 0
    }

    /// The strategy of the version step (the only step of a one-strategy configuration). Setting it makes the
    /// configuration a one-step plan.
    public var strategy: RollbackStrategy {
        get { steps[versionStepIndex].strategy }
        set {
            steps = [RollbackStep(newValue)]
            isPlan = false
        }
    }

    /// The first symlink step's settings (where `migrationsDir` is relative to).
    public var symlinkStrategy: SymlinkStrategy? {
        for step in steps { if case let .symlink(s) = step.strategy { return s } }
        return nil
    }

    /// The migrations directory of `version`, or nil when no migrations directory is configured (or it cannot be
    /// placed, which validation reports).
    public func migrationsDirectory(for version: String) -> String? {
        guard let dir = migrationsDir else { return nil }
        if dir.hasPrefix("/") { return dir.replacing("{version}", with: version) }
        guard let s = symlinkStrategy else { return nil }
        return s.releasePath(version) + "/" + dir
    }

    /// Parses a `rollback` object on its own (the same rules as inside thresholds.json); `path` prefixes the JSON
    /// paths in errors.
    public static func parse(text: String, file: String, path: String = "rollback") throws(ConfigError)
        -> RollbackConfig
    {
        let root: JSONValue
        do {
            root = try JSONParser.parse(text)
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "invalid JSON at \(error)")])
        }
        let sink = IssueSink()
        let result = read(root, path: path, sink: sink)
        guard sink.errors.isEmpty, let result else {
            throw ConfigError(
                file: file, issues: sink.errors.isEmpty ? [ConfigIssue(path: path, message: "invalid")] : sink.errors)
        }
        return result
    }
}

extension RollbackConfig {
    static func read(_ value: JSONValue, path: String, sink: IssueSink) -> RollbackConfig? {
        guard var obj = ObjectReader(value, path: path, sink: sink) else { return nil }
        // Either one strategy (`strategy` + its settings object) or a plan (`steps`), never both.
        let isPlan = obj.has("steps")
        var name: String?
        if isPlan {
            if obj.has("strategy") {
                _ = obj.value("strategy")
                sink.error(
                    obj.childPath("strategy"),
                    "give either strategy (one step) or steps (a plan), not both; move it into a step of steps")
            }
        } else {
            name = strategyName(&obj)
        }
        let phaseTimeout = obj.read("phaseTimeout", Read.positiveDuration) ?? .seconds(60)
        let backup = obj.read("backup", Read.argv)
        let migrationsDir = obj.read("migrationsDir", Read.nonEmptyString)
        let compatible = obj.read("migrationsCompatible", Read.bool) ?? false
        let gitTagsRepo = obj.read("gitTagsRepo", Read.absolutePath)
        let smoke =
            obj.read("smokeURLs") { v, p, s -> [String]? in
                guard let list = Read.stringArray(v, p, s) else { return nil }
                var ok = true
                for (i, u) in list.enumerated() where URLParts(u) == nil {
                    s.error(JSONPath.element(p, i), "\(JSONValue.quote(u)) is not an absolute http:// or https:// URL")
                    ok = false
                }
                return ok ? list : nil
            } ?? []

        var steps: [RollbackStep]?
        if isPlan {
            for other in RollbackStrategy.names where obj.has(other) {
                _ = obj.value(other)
                sink.error(obj.childPath(other), "settings for strategy \(other) belong inside its step in steps")
            }
            steps = obj.read("steps", readSteps)
        } else if let strategy = strategySettings(name, &obj) {
            steps = [RollbackStep(strategy)]
        }
        if let m = migrationsDir, m.hasPrefix("/"), !m.contains("{version}") {
            sink.error(
                obj.childPath("migrationsDir"),
                "\(JSONValue.quote(m)) is absolute but has no {version} placeholder; write e.g. \"/srv/app/releases/{version}/db/migrate\", or a path relative to the symlink strategy's release directory"
            )
        } else if let m = migrationsDir, !m.hasPrefix("/"), let steps,
            !steps.contains(where: { $0.strategy.name == "symlink" })
        {
            sink.error(
                obj.childPath("migrationsDir"),
                "\(JSONValue.quote(m)) is relative to a release directory, which only the symlink strategy has; write an absolute path with {version}, e.g. \"/srv/app/releases/{version}/db/migrate\""
            )
        }
        obj.finish(known: ["steps"])
        guard let steps else { return nil }
        return RollbackConfig(
            steps: steps, isPlan: isPlan, phaseTimeout: phaseTimeout, backup: backup,
            migrationsDir: migrationsDir, migrationsCompatible: compatible,
            gitTagsRepo: gitTagsRepo, smokeURLs: smoke)
    }

    /// `strategy` of `obj` (the top-level rollback object or a step), checked against the nine names.
    private static func strategyName(_ obj: inout ObjectReader) -> String? {
        obj.read("strategy", required: true) { v, p, s -> String? in
            guard let n = Read.string(v, p, s) else { return nil }
            guard RollbackStrategy.names.contains(n) else {
                s.error(p, "\(JSONValue.quote(n)) is not one of \(RollbackStrategy.names.joined(separator: ", "))")
                return nil
            }
            return n
        }
    }

    /// The settings object named after the strategy `name` in `obj`. Settings for another strategy are an error
    /// (they would silently do nothing).
    private static func strategySettings(_ name: String?, _ obj: inout ObjectReader) -> RollbackStrategy? {
        let sink = obj.sink
        for other in RollbackStrategy.names where other != name && obj.has(other) {
            _ = obj.value(other)
            if name == nil && obj.has("strategy") { continue } // an invalid strategy name: reported already
            sink.error(
                obj.childPath(other),
                "settings for strategy \(other), but strategy is \(name.map { JSONValue.quote($0) } ?? "not set")")
        }
        guard let name, let settings = obj.value(name, required: true),
            var s = ObjectReader(settings, path: obj.childPath(name), sink: sink)
        else { return nil }
        let strategy = readStrategy(name, &s)
        s.finish()
        return strategy
    }

    /// `rollback.steps`: each step a strategy with its settings, plus name, timeout, onFailure, approval, version.
    private static func readSteps(_ v: JSONValue, _ p: String, _ sink: IssueSink) -> [RollbackStep]? {
        guard case let .array(items) = v else {
            sink.error(p, "expected an array of steps, found \(v.typeName)")
            return nil
        }
        guard !items.isEmpty else {
            sink.error(p, "must list at least one step")
            return nil
        }
        var steps: [RollbackStep] = []
        var ok = true
        var named: [String: Int] = [:]
        var versionStep: Int?
        for (i, item) in items.enumerated() {
            guard var o = ObjectReader(item, path: JSONPath.element(p, i), sink: sink) else {
                ok = false
                continue
            }
            let strategyName = strategyName(&o)
            let name = o.read("name", Read.nonEmptyString)
            if let name {
                if let first = named[name] {
                    sink.error(
                        o.childPath("name"),
                        "duplicate step name \(JSONValue.quote(name)) (also \(JSONPath.element(p, first)))")
                } else {
                    named[name] = i
                }
            }
            let timeout = o.read("timeout", Read.positiveDuration)
            let onFailure = o.read("onFailure", Read.choice(RollbackStep.OnFailure.self)) ?? .halt
            let approval = o.read("approval", Read.bool) ?? false
            let version = o.read("version", Read.bool) ?? false
            if version {
                if let first = versionStep {
                    sink.error(
                        o.childPath("version"),
                        "only one step tells the live version (also \(JSONPath.element(p, first)))")
                } else {
                    versionStep = i
                }
            }
            let strategy = strategySettings(strategyName, &o)
            let restore = o.read("restore", readRestore) ?? []
            if !restore.isEmpty, let strategy, !RollbackStep(strategy).carriesWeights {
                sink.error(
                    o.childPath("restore"),
                    "a restore schedule needs a step that carries weights (haproxy-canary with \"mode\": \"weight\"); step \(i + 1) is \(strategy.name)\(strategy.name == "haproxy-canary" ? " in drain mode" : "")"
                )
            }
            o.finish()
            guard let strategy else {
                ok = false
                continue
            }
            steps.append(
                RollbackStep(
                    strategy, name: name, timeout: timeout, onFailure: onFailure, approval: approval,
                    version: version, restore: restore))
        }
        return ok ? steps : nil
    }

    /// `restore`: `[{"weight": 10, "hold": "30s"}, {"weight": 50, "hold": "1m"}, {"weight": 100}]`, weights rising.
    private static func readRestore(_ v: JSONValue, _ p: String, _ sink: IssueSink) -> [RestoreStage]? {
        guard case let .array(items) = v else {
            sink.error(
                p, "expected an array of stages such as {\"weight\": 10, \"hold\": \"30s\"}, found \(v.typeName)")
            return nil
        }
        guard !items.isEmpty else {
            sink.error(p, "must list at least one stage, e.g. [{\"weight\": 10, \"hold\": \"30s\"}, {\"weight\": 100}]")
            return nil
        }
        var stages: [RestoreStage] = []
        var ok = true
        for (i, item) in items.enumerated() {
            guard var o = ObjectReader(item, path: JSONPath.element(p, i), sink: sink) else {
                ok = false
                continue
            }
            let weight = o.read("weight", required: true) { v, p, k -> Int? in
                guard case let .number(n) = v, n == n.rounded(), RestoreStage.weights.contains(Int(exactly: n) ?? -1)
                else {
                    k.error(p, "expected a whole weight from 1 to 256 (HAProxy's range), found \(v.serialized)")
                    return nil
                }
                return Int(n)
            }
            let hold = o.read("hold", Read.positiveDuration)
            o.finish()
            guard let weight else {
                ok = false
                continue
            }
            if let last = stages.last, weight <= last.weight {
                sink.error(
                    o.childPath("weight"),
                    "\(weight) does not rise above the previous stage's \(last.weight): each stage gives back more traffic"
                )
                ok = false
            }
            stages.append(RestoreStage(weight: weight, hold: hold))
        }
        return ok ? stages : nil
    }

    private static func readStrategy(_ name: String, _ s: inout ObjectReader) -> RollbackStrategy? {
        let sink = s.sink
        switch name {
        case "symlink":
            let releases = s.read("releasesDir", required: true, Read.absolutePath)
            let current = s.read("currentLink", required: true, Read.absolutePath)
            let reload = s.read("reload", Read.argv)
            guard let releases, let current else { return nil }
            return .symlink(SymlinkStrategy(releasesDir: releases, currentLink: current, reload: reload))
        case "nginx-blue-green":
            let file = s.read("upstreamFile", required: true, Read.absolutePath)
            let upstream = s.read("upstreamName", required: true, Read.nonEmptyString)
            var colors: [String: [String]] = [:]
            if let cv = s.value("colors", required: true),
                var c = ObjectReader(cv, path: s.childPath("colors"), sink: sink)
            {
                for m in c.members {
                    if let list = c.read(m.key, Read.stringArray) {
                        if list.isEmpty { sink.error(c.childPath(m.key), "must list at least one host:port") }
                        colors[m.key] = list
                    }
                }
                c.finish()
                if c.members.count < 2 { sink.error(c.path, "needs at least two colours, e.g. blue and green") }
            }
            var versionURLs: [String: String] = [:]
            if let vv = s.value("versionURLs"), var v = ObjectReader(vv, path: s.childPath("versionURLs"), sink: sink) {
                for m in v.members {
                    if colors[m.key] == nil { sink.error(v.childPath(m.key), "is not one of the colours in colors") }
                    if let u = v.read(m.key, Read.httpURL) { versionURLs[m.key] = u }
                }
                v.finish()
            }
            let test = s.read("test", Read.argv) ?? ["nginx", "-t"]
            let reload = s.read("reload", Read.argv) ?? ["nginx", "-s", "reload"]
            let check = s.read("checkURL", Read.httpURL)
            guard let file, let upstream else { return nil }
            return .nginxBlueGreen(
                NginxBlueGreenStrategy(
                    upstreamFile: file, upstreamName: upstream, colors: colors,
                    versionURLs: versionURLs, test: test, reload: reload, checkURL: check))
        case "haproxy-canary":
            let socket = s.read("socket", required: true, Read.absolutePath)
            let backend = s.read("backend", required: true, Read.nonEmptyString)
            let server = s.read("canaryServer", required: true, Read.nonEmptyString)
            let mode =
                s.read("mode") { v, p, k -> String? in
                    guard let m = Read.string(v, p, k) else { return nil }
                    guard m == "drain" || m == "weight" else {
                        k.error(p, "\(JSONValue.quote(m)) is not one of drain, weight"); return nil
                    }
                    return m
                } ?? "drain"
            guard let socket, let backend, let server else { return nil }
            return .haproxyCanary(
                HAProxyCanaryStrategy(socket: socket, backend: backend, canaryServer: server, mode: mode))
        case "systemd-unit":
            let template = s.read("template", required: true, Read.nonEmptyString)
            if let template, !template.hasSuffix("@") {
                sink.error(
                    s.childPath("template"),
                    "\(JSONValue.quote(template)) must end with @ (a template unit prefix such as \"app@\")")
            }
            let timeout = s.read("activeTimeout", Read.positiveDuration) ?? .seconds(60)
            let systemctl = s.read("systemctl", Read.nonEmptyString) ?? "systemctl"
            let persist = s.read("persist", Read.bool) ?? true
            guard let template else { return nil }
            return .systemdUnit(
                SystemdUnitStrategy(
                    template: template, activeTimeout: timeout, systemctl: systemctl,
                    persist: persist))
        case "kubernetes":
            let deployment = s.read("deployment", required: true, Read.nonEmptyString)
            let ns = s.read("namespace", Read.nonEmptyString)
            let ctx = s.read("context", Read.nonEmptyString)
            let kubectl = s.read("kubectl", Read.nonEmptyString) ?? "kubectl"
            let timeout = s.read("statusTimeout", Read.positiveDuration) ?? .minutes(5)
            guard let deployment else { return nil }
            return .kubernetes(
                KubernetesStrategy(
                    deployment: deployment, namespace: ns, context: ctx, kubectl: kubectl, statusTimeout: timeout))
        case "docker-swarm":
            let service = s.read("service", required: true, Read.nonEmptyString)
            let image = s.read("image", Read.nonEmptyString)
            let docker = s.read("docker", Read.nonEmptyString) ?? "docker"
            guard let service else { return nil }
            return .dockerSwarm(DockerSwarmStrategy(service: service, image: image, docker: docker))
        case "feature-flag":
            let flag = s.read("flag", required: true, Read.nonEmptyString)
            var http: FeatureFlagHTTP?
            if let hv = s.value("http"), var h = ObjectReader(hv, path: s.childPath("http"), sink: sink) {
                let method =
                    h.read("method") { v, p, k -> String? in
                        guard let m = Read.nonEmptyString(v, p, k) else { return nil }
                        guard FeatureFlagHTTP.methods.contains(m.uppercased()) else {
                            k.error(
                                p,
                                "\(JSONValue.quote(m)) is not one of \(FeatureFlagHTTP.methods.joined(separator: ", "))"
                            )
                            return nil
                        }
                        return m
                    } ?? "PATCH"
                let url = h.read("url", required: true, Read.httpURL)
                let body = h.value("body")
                let token = h.read("tokenFile", Read.absolutePath)
                let options = HTTPOptions.read(from: &h, defaultTimeout: .seconds(10))
                if token != nil && options.bearerTokenFile != nil {
                    sink.error(
                        h.childPath("bearerTokenFile"),
                        "give the token once: tokenFile and bearerTokenFile are the same setting")
                }
                if let b = body, case .object = b {
                } else if let b = body, case .array = b {
                } else if body != nil {
                    sink.error(
                        h.childPath("body"),
                        "expected a JSON object or array (sent as the request body), found \(body?.typeName ?? "nothing")"
                    )
                }
                h.finish()
                if let url {
                    http = FeatureFlagHTTP(
                        method: method.uppercased(), url: url, body: body,
                        tokenFile: token ?? options.bearerTokenFile, options: options)
                }
            }
            let file = s.read("file", Read.absolutePath)
            if (s.has("http") ? 1 : 0) + (s.has("file") ? 1 : 0) != 1 {
                sink.error(s.path, "needs exactly one of http or file")
            }
            guard let flag, http != nil || file != nil else { return nil }
            return .featureFlag(FeatureFlagStrategy(flag: flag, http: http, file: file))
        case "config":
            let files = s.read("files", required: true) { v, p, k -> [String]? in
                guard let list = Read.stringArray(v, p, k) else { return nil }
                if list.isEmpty { k.error(p, "must list at least one file"); return nil }
                for (i, f) in list.enumerated() where !f.hasPrefix("/") {
                    k.error(JSONPath.element(p, i), "\(JSONValue.quote(f)) is not an absolute path")
                }
                return list
            }
            let dir = s.read("directory", Read.absolutePath)
            let repo = s.read("gitRepo", Read.absolutePath)
            if (dir == nil) == (repo == nil) && (s.has("directory") == s.has("gitRepo")) {
                sink.error(s.path, "needs exactly one of directory or gitRepo")
            }
            let validate = s.read("validate", Read.argv)
            let reload = s.read("reload", Read.argv)
            guard let files else { return nil }
            return .config(
                ConfigStrategy(files: files, directory: dir, gitRepo: repo, validate: validate, reload: reload))
        case "command":
            let argv = s.read("argv", required: true, Read.argv)
            guard let argv else { return nil }
            return .command(CommandStrategy(argv: argv))
        default:
            return nil
        }
    }
}

extension RollbackConfig {
    /// For a plan: the index of the step a journaled phase name (`<step>.<phase>`, e.g. `2.flag-off`) belongs to.
    public func stepIndex(ofPhase phase: String) -> Int? {
        guard isPlan, let dot = phase.firstIndex(of: "."), let n = Int(phase[..<dot]), steps.indices.contains(n - 1)
        else { return nil }
        return n - 1
    }

    /// The event fields naming the step of a phase of a plan (`step`: its 1-based number, `step_label`:
    /// `2 "flags" (feature-flag)`); empty for one strategy.
    public func stepFields(ofPhase phase: String) -> [String: String] {
        guard let i = stepIndex(ofPhase: phase) else { return [:] }
        return ["step": String(i + 1), "step_label": steps[i].label(index: i)]
    }

    /// The event fields of a plan that stopped at step index `failed`: the step, the other steps that had run
    /// (`steps_run`: those before it, and later ones in `ran`: a restore schedule runs after every step) and those
    /// that did not (`steps_not_run`), labels separated by `; ` (`none` when empty).
    public func stepFailureFields(failed i: Int, ran: Set<Int> = []) -> [String: String] {
        guard steps.indices.contains(i) else { return [:] }
        func list(_ r: [Int]) -> String {
            r.isEmpty ? "none" : r.map { steps[$0].label(index: $0) }.joined(separator: "; ")
        }
        let others = steps.indices.filter { $0 != i }
        return [
            "step": String(i + 1), "step_label": steps[i].label(index: i),
            "steps_run": list(others.filter { $0 < i || ran.contains($0) }),
            "steps_not_run": list(others.filter { $0 > i && !ran.contains($0) }),
        ]
    }
}
