/// How the guarded service is deployed, and so how a rollback is carried out.
public enum RollbackStrategy: Sendable, Equatable {
    case symlink(SymlinkStrategy)
    case nginxBlueGreen(NginxBlueGreenStrategy)
    case haproxyCanary(HAProxyCanaryStrategy)
    case systemdUnit(SystemdUnitStrategy)
    case kubernetes(KubernetesStrategy)
    case dockerSwarm(DockerSwarmStrategy)
    case featureFlag(FeatureFlagStrategy)
    case config(ConfigStrategy)
    case command(CommandStrategy)

    /// The names used for `rollback.strategy` in thresholds.json.
    public static let names = ["symlink", "nginx-blue-green", "haproxy-canary", "systemd-unit", "kubernetes",
                               "docker-swarm", "feature-flag", "config", "command"]

    public var name: String {
        switch self {
        case .symlink: return "symlink"
        case .nginxBlueGreen: return "nginx-blue-green"
        case .haproxyCanary: return "haproxy-canary"
        case .systemdUnit: return "systemd-unit"
        case .kubernetes: return "kubernetes"
        case .dockerSwarm: return "docker-swarm"
        case .featureFlag: return "feature-flag"
        case .config: return "config"
        case .command: return "command"
        }
    }
}

/// Capistrano-style `releasesDir/<version>` and a `current` symlink swapped atomically.
public struct SymlinkStrategy: Sendable, Equatable {
    public var releasesDir: String
    public var currentLink: String
    /// Run after the swap (e.g. `["systemctl", "reload", "app"]`).
    public var reload: [String]?

    public init(releasesDir: String, currentLink: String, reload: [String]? = nil) {
        self.releasesDir = releasesDir
        self.currentLink = currentLink
        self.reload = reload
    }

    /// `releasesDir/<version>`.
    public func releasePath(_ version: String) -> String { releasesDir + "/" + version }
}

public struct NginxBlueGreenStrategy: Sendable, Equatable {
    /// The include file holding the active upstream, rewritten atomically.
    public var upstreamFile: String
    public var upstreamName: String
    /// Colour name → servers (`host:port`), e.g. `{"blue": ["127.0.0.1:8081"], "green": ["127.0.0.1:8082"]}`.
    public var colors: [String: [String]]
    /// Colour name → URL that reports the version that colour runs.
    public var versionURLs: [String: String]
    public var test: [String]
    public var reload: [String]
    /// URL through nginx checked after the reload.
    public var checkURL: String?

    public init(upstreamFile: String, upstreamName: String, colors: [String: [String]], versionURLs: [String: String] = [:],
                test: [String] = ["nginx", "-t"], reload: [String] = ["nginx", "-s", "reload"], checkURL: String? = nil) {
        self.upstreamFile = upstreamFile
        self.upstreamName = upstreamName
        self.colors = colors
        self.versionURLs = versionURLs
        self.test = test
        self.reload = reload
        self.checkURL = checkURL
    }
}

public struct HAProxyCanaryStrategy: Sendable, Equatable {
    /// The runtime API socket (`stats socket … level admin`).
    public var socket: String
    public var backend: String
    public var canaryServer: String
    /// `drain` (state drain: no new requests, existing finish) or `weight` (weight 0).
    public var mode: String

    public init(socket: String, backend: String, canaryServer: String, mode: String = "drain") {
        self.socket = socket
        self.backend = backend
        self.canaryServer = canaryServer
        self.mode = mode
    }
}

public struct SystemdUnitStrategy: Sendable, Equatable {
    /// Template prefix, e.g. `app@` for `app@<version>.service`.
    public var template: String
    public var activeTimeout: Interval
    public var systemctl: String
    /// Also `enable` the good instance and `disable` the bad one, so a reboot keeps the rollback (default true).
    public var persist: Bool

    public init(template: String, activeTimeout: Interval = .seconds(60), systemctl: String = "systemctl",
                persist: Bool = true) {
        self.template = template
        self.activeTimeout = activeTimeout
        self.systemctl = systemctl
        self.persist = persist
    }

    /// `app@v1.service`.
    public func unit(_ version: String) -> String { template + version + ".service" }
}

public struct KubernetesStrategy: Sendable, Equatable {
    public var deployment: String
    public var namespace: String?
    public var context: String?
    public var kubectl: String
    public var statusTimeout: Interval

    public init(deployment: String, namespace: String? = nil, context: String? = nil, kubectl: String = "kubectl",
                statusTimeout: Interval = .minutes(5)) {
        self.deployment = deployment
        self.namespace = namespace
        self.context = context
        self.kubectl = kubectl
        self.statusTimeout = statusTimeout
    }
}

public struct DockerSwarmStrategy: Sendable, Equatable {
    public var service: String
    /// When set, roll back with `--image IMAGE:<target>`; otherwise `--rollback`.
    public var image: String?
    public var docker: String

    public init(service: String, image: String? = nil, docker: String = "docker") {
        self.service = service
        self.image = image
        self.docker = docker
    }
}

public struct FeatureFlagStrategy: Sendable, Equatable {
    public var flag: String
    /// Turn the flag off through HTTP…
    public var http: FeatureFlagHTTP?
    /// …or by rewriting a flags JSON file atomically. The file is a JSON object; the flag is a top-level key whose
    /// value is a boolean (set to false) or an object with a boolean `enabled` (set to false).
    public var file: String?

    public init(flag: String, http: FeatureFlagHTTP? = nil, file: String? = nil) {
        self.flag = flag
        self.http = http
        self.file = file
    }
}

public struct FeatureFlagHTTP: Sendable, Equatable {
    public var method: String
    public var url: String
    public var body: JSONValue?
    /// Sent as `Authorization: Bearer <content>`; never logged.
    public var tokenFile: String?
    /// Timeouts and TLS trust store (the `HTTPOptions` keys; `bearerTokenFile` is the same as `tokenFile`).
    public var options: HTTPOptions

    /// Methods that change a flag.
    public static let methods = ["POST", "PUT", "PATCH", "DELETE"]

    public init(method: String = "PATCH", url: String, body: JSONValue? = nil, tokenFile: String? = nil,
                options: HTTPOptions = HTTPOptions()) {
        self.method = method
        self.url = url
        self.body = body
        self.tokenFile = tokenFile
        self.options = options
    }
}

public struct ConfigStrategy: Sendable, Equatable {
    /// Files to restore (absolute paths of the live config).
    public var files: [String]
    /// A directory holding each release's copies: `<directory>/<version>/<basename>`…
    public var directory: String?
    /// …or a git repository from which `git show <tag>:<path>` restores them.
    public var gitRepo: String?
    public var validate: [String]?
    public var reload: [String]?

    public init(files: [String], directory: String? = nil, gitRepo: String? = nil, validate: [String]? = nil,
                reload: [String]? = nil) {
        self.files = files
        self.directory = directory
        self.gitRepo = gitRepo
        self.validate = validate
        self.reload = reload
    }

    /// Where `git show <tag>:<path>` finds a live file: its path relative to the repository when the file lives
    /// inside the repository's work tree, otherwise its base name at the repository root.
    public func gitPath(for file: String) -> String {
        if let repo = gitRepo {
            let prefix = repo.hasSuffix("/") ? repo : repo + "/"
            if file.hasPrefix(prefix) { return String(file.dropFirst(prefix.count)) }
        }
        return ConfigStrategy.baseName(file)
    }

    /// `<directory>/<version>/<basename>`, for the directory variant.
    public func directoryCopy(of file: String, version: String) -> String? {
        directory.map { "\($0)/\(version)/\(ConfigStrategy.baseName(file))" }
    }

    static func baseName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}

public struct CommandStrategy: Sendable, Equatable {
    /// Runs with ROLLBACKD_FROM, ROLLBACKD_TO and ROLLBACKD_INCIDENT in its environment.
    public var argv: [String]

    public init(argv: [String]) { self.argv = argv }
}

public struct RollbackConfig: Sendable, Equatable {
    public var strategy: RollbackStrategy
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

    public init(strategy: RollbackStrategy, phaseTimeout: Interval = .seconds(60), backup: [String]? = nil,
                migrationsDir: String? = nil, migrationsCompatible: Bool = false, gitTagsRepo: String? = nil,
                smokeURLs: [String] = []) {
        self.strategy = strategy
        self.phaseTimeout = phaseTimeout
        self.backup = backup
        self.migrationsDir = migrationsDir
        self.migrationsCompatible = migrationsCompatible
        self.gitTagsRepo = gitTagsRepo
        self.smokeURLs = smokeURLs
    }

    /// The migrations directory of `version`, or nil when no migrations directory is configured (or it cannot be
    /// placed, which validation reports).
    public func migrationsDirectory(for version: String) -> String? {
        guard let dir = migrationsDir else { return nil }
        if dir.hasPrefix("/") { return dir.replacing("{version}", with: version) }
        guard case let .symlink(s) = strategy else { return nil }
        return s.releasePath(version) + "/" + dir
    }

    /// Parses a `rollback` object on its own (the same rules as inside thresholds.json); `path` prefixes the JSON
    /// paths in errors.
    public static func parse(text: String, file: String, path: String = "rollback") throws(ConfigError) -> RollbackConfig {
        let root: JSONValue
        do {
            root = try JSONParser.parse(text)
        } catch {
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "invalid JSON at \(error)")])
        }
        let sink = IssueSink()
        let result = read(root, path: path, sink: sink)
        guard sink.errors.isEmpty, let result else {
            throw ConfigError(file: file, issues: sink.errors.isEmpty ? [ConfigIssue(path: path, message: "invalid")] : sink.errors)
        }
        return result
    }
}

extension RollbackConfig {
    static func read(_ value: JSONValue, path: String, sink: IssueSink) -> RollbackConfig? {
        guard var obj = ObjectReader(value, path: path, sink: sink) else { return nil }
        let name = obj.read("strategy", required: true) { v, p, s -> String? in
            guard let n = Read.string(v, p, s) else { return nil }
            guard RollbackStrategy.names.contains(n) else {
                s.error(p, "\(JSONValue.quote(n)) is not one of \(RollbackStrategy.names.joined(separator: ", "))")
                return nil
            }
            return n
        }
        let phaseTimeout = obj.read("phaseTimeout", Read.positiveDuration) ?? .seconds(60)
        let backup = obj.read("backup", Read.argv)
        let migrationsDir = obj.read("migrationsDir", Read.nonEmptyString)
        if let m = migrationsDir, m.hasPrefix("/"), !m.contains("{version}") {
            sink.error(obj.childPath("migrationsDir"), "\(JSONValue.quote(m)) is absolute but has no {version} placeholder; write e.g. \"/srv/app/releases/{version}/db/migrate\", or a path relative to the symlink strategy's release directory")
        } else if let m = migrationsDir, !m.hasPrefix("/"), name != nil, name != "symlink" {
            sink.error(obj.childPath("migrationsDir"), "\(JSONValue.quote(m)) is relative to a release directory, which only the symlink strategy has; write an absolute path with {version}, e.g. \"/srv/app/releases/{version}/db/migrate\"")
        }
        let compatible = obj.read("migrationsCompatible", Read.bool) ?? false
        let gitTagsRepo = obj.read("gitTagsRepo", Read.absolutePath)
        let smoke = obj.read("smokeURLs") { v, p, s -> [String]? in
            guard let list = Read.stringArray(v, p, s) else { return nil }
            var ok = true
            for (i, u) in list.enumerated() where URLParts(u) == nil {
                s.error(JSONPath.element(p, i), "\(JSONValue.quote(u)) is not an absolute http:// or https:// URL")
                ok = false
            }
            return ok ? list : nil
        } ?? []

        // Settings for the chosen strategy live in an object named after it; settings for another strategy
        // are an error (they would silently do nothing).
        for other in RollbackStrategy.names where other != name && obj.has(other) {
            _ = obj.value(other)
            if name == nil && obj.has("strategy") { continue } // an invalid strategy name: reported above
            sink.error(obj.childPath(other), "settings for strategy \(other), but strategy is \(name.map { JSONValue.quote($0) } ?? "not set")")
        }
        var strategy: RollbackStrategy?
        if let name {
            if let settings = obj.value(name, required: true),
               var s = ObjectReader(settings, path: obj.childPath(name), sink: sink) {
                strategy = readStrategy(name, &s)
                s.finish()
            }
        }
        obj.finish()
        guard let strategy else { return nil }
        return RollbackConfig(strategy: strategy, phaseTimeout: phaseTimeout, backup: backup,
                              migrationsDir: migrationsDir, migrationsCompatible: compatible,
                              gitTagsRepo: gitTagsRepo, smokeURLs: smoke)
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
            if let cv = s.value("colors", required: true), var c = ObjectReader(cv, path: s.childPath("colors"), sink: sink) {
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
            return .nginxBlueGreen(NginxBlueGreenStrategy(upstreamFile: file, upstreamName: upstream, colors: colors,
                                                          versionURLs: versionURLs, test: test, reload: reload, checkURL: check))
        case "haproxy-canary":
            let socket = s.read("socket", required: true, Read.absolutePath)
            let backend = s.read("backend", required: true, Read.nonEmptyString)
            let server = s.read("canaryServer", required: true, Read.nonEmptyString)
            let mode = s.read("mode") { v, p, k -> String? in
                guard let m = Read.string(v, p, k) else { return nil }
                guard m == "drain" || m == "weight" else { k.error(p, "\(JSONValue.quote(m)) is not one of drain, weight"); return nil }
                return m
            } ?? "drain"
            guard let socket, let backend, let server else { return nil }
            return .haproxyCanary(HAProxyCanaryStrategy(socket: socket, backend: backend, canaryServer: server, mode: mode))
        case "systemd-unit":
            let template = s.read("template", required: true, Read.nonEmptyString)
            if let template, !template.hasSuffix("@") {
                sink.error(s.childPath("template"), "\(JSONValue.quote(template)) must end with @ (a template unit prefix such as \"app@\")")
            }
            let timeout = s.read("activeTimeout", Read.positiveDuration) ?? .seconds(60)
            let systemctl = s.read("systemctl", Read.nonEmptyString) ?? "systemctl"
            let persist = s.read("persist", Read.bool) ?? true
            guard let template else { return nil }
            return .systemdUnit(SystemdUnitStrategy(template: template, activeTimeout: timeout, systemctl: systemctl,
                                                    persist: persist))
        case "kubernetes":
            let deployment = s.read("deployment", required: true, Read.nonEmptyString)
            let ns = s.read("namespace", Read.nonEmptyString)
            let ctx = s.read("context", Read.nonEmptyString)
            let kubectl = s.read("kubectl", Read.nonEmptyString) ?? "kubectl"
            let timeout = s.read("statusTimeout", Read.positiveDuration) ?? .minutes(5)
            guard let deployment else { return nil }
            return .kubernetes(KubernetesStrategy(deployment: deployment, namespace: ns, context: ctx, kubectl: kubectl, statusTimeout: timeout))
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
                let method = h.read("method") { v, p, k -> String? in
                    guard let m = Read.nonEmptyString(v, p, k) else { return nil }
                    guard FeatureFlagHTTP.methods.contains(m.uppercased()) else {
                        k.error(p, "\(JSONValue.quote(m)) is not one of \(FeatureFlagHTTP.methods.joined(separator: ", "))")
                        return nil
                    }
                    return m
                } ?? "PATCH"
                let url = h.read("url", required: true, Read.httpURL)
                let body = h.value("body")
                let token = h.read("tokenFile", Read.absolutePath)
                let options = HTTPOptions.read(from: &h, defaultTimeout: .seconds(10))
                if token != nil && options.bearerTokenFile != nil {
                    sink.error(h.childPath("bearerTokenFile"), "give the token once: tokenFile and bearerTokenFile are the same setting")
                }
                if let b = body, case .object = b {} else if let b = body, case .array = b {} else if body != nil {
                    sink.error(h.childPath("body"), "expected a JSON object or array (sent as the request body), found \(body?.typeName ?? "nothing")")
                }
                h.finish()
                if let url {
                    http = FeatureFlagHTTP(method: method.uppercased(), url: url, body: body,
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
            return .config(ConfigStrategy(files: files, directory: dir, gitRepo: repo, validate: validate, reload: reload))
        case "command":
            let argv = s.read("argv", required: true, Read.argv)
            guard let argv else { return nil }
            return .command(CommandStrategy(argv: argv))
        default:
            return nil
        }
    }
}
