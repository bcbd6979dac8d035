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
}

public struct HAProxyCanaryStrategy: Sendable, Equatable {
    /// The runtime API socket (`stats socket … level admin`).
    public var socket: String
    public var backend: String
    public var canaryServer: String
    /// `drain` (state drain: no new requests, existing finish) or `weight` (weight 0).
    public var mode: String
}

public struct SystemdUnitStrategy: Sendable, Equatable {
    /// Template prefix, e.g. `app@` for `app@<version>.service`.
    public var template: String
    public var activeTimeout: Interval
    public var systemctl: String
}

public struct KubernetesStrategy: Sendable, Equatable {
    public var deployment: String
    public var namespace: String?
    public var context: String?
    public var kubectl: String
    public var statusTimeout: Interval
}

public struct DockerSwarmStrategy: Sendable, Equatable {
    public var service: String
    /// When set, roll back with `--image IMAGE:<target>`; otherwise `--rollback`.
    public var image: String?
    public var docker: String
}

public struct FeatureFlagStrategy: Sendable, Equatable {
    public var flag: String
    /// Turn the flag off through HTTP…
    public var http: FeatureFlagHTTP?
    /// …or by rewriting a flags JSON file atomically.
    public var file: String?
}

public struct FeatureFlagHTTP: Sendable, Equatable {
    public var method: String
    public var url: String
    public var body: JSONValue?
    public var tokenFile: String?
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
}

public struct CommandStrategy: Sendable, Equatable {
    /// Runs with ROLLBACKD_FROM, ROLLBACKD_TO and ROLLBACKD_INCIDENT in its environment.
    public var argv: [String]
}

public struct RollbackConfig: Sendable, Equatable {
    public var strategy: RollbackStrategy
    /// Each phase of a rollback is stopped and failed after this long.
    public var phaseTimeout: Interval
    /// Run before an automatic rollback with ROLLBACKD_BACKUP_NAME=pre-rollback-<UTC timestamp>.
    public var backup: [String]?
    /// Migrations directory relative to a release; when the current release has migrations the target lacks,
    /// an automatic rollback is demoted to semi unless `migrationsCompatible` is true.
    public var migrationsDir: String?
    public var migrationsCompatible: Bool
    /// Choose targets among git tags (`git tag --sort=-version:refname`) that are also known-good.
    public var gitTagsRepo: String?
    /// Critical endpoints checked (2xx) during verification.
    public var smokeURLs: [String]
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
            guard let template else { return nil }
            return .systemdUnit(SystemdUnitStrategy(template: template, activeTimeout: timeout, systemctl: systemctl))
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
                let method = h.read("method", Read.nonEmptyString) ?? "PATCH"
                let url = h.read("url", required: true, Read.httpURL)
                let body = h.value("body")
                let token = h.read("tokenFile", Read.absolutePath)
                h.finish()
                if let url { http = FeatureFlagHTTP(method: method, url: url, body: body, tokenFile: token) }
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
