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
    public static let names = [
        "symlink", "nginx-blue-green", "haproxy-canary", "systemd-unit", "kubernetes",
        "docker-swarm", "feature-flag", "config", "command",
    ]

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

    public init(
        upstreamFile: String, upstreamName: String, colors: [String: [String]], versionURLs: [String: String] = [:],
        test: [String] = ["nginx", "-t"], reload: [String] = ["nginx", "-s", "reload"], checkURL: String? = nil
    ) {
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

    public init(
        template: String, activeTimeout: Interval = .seconds(60), systemctl: String = "systemctl",
        persist: Bool = true
    ) {
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

    public init(
        deployment: String, namespace: String? = nil, context: String? = nil, kubectl: String = "kubectl",
        statusTimeout: Interval = .minutes(5)
    ) {
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

    public init(
        method: String = "PATCH", url: String, body: JSONValue? = nil, tokenFile: String? = nil,
        options: HTTPOptions = HTTPOptions()
    ) {
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

    public init(
        files: [String], directory: String? = nil, gitRepo: String? = nil, validate: [String]? = nil,
        reload: [String]? = nil
    ) {
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

/// One step of a rollback plan (`rollback.steps[i]`, or the whole of `rollback.strategy`): a strategy with its
/// settings and how the plan treats it.
public struct RollbackStep: Sendable, Equatable {
    /// What a failed step does to the plan.
    public enum OnFailure: String, Sendable, Equatable, CaseIterable {
        /// Stop the plan: the rollback fails, naming this step and the steps that had run (the default).
        case halt
        /// Report the failure and go on with the next step (best-effort steps such as a cache purge).
        case `continue`
    }

    public var name: String?
    public var strategy: RollbackStrategy
    /// Each of this step's phases fails after this long (default: `rollback.phaseTimeout`).
    public var timeout: Interval?
    public var onFailure: OnFailure
    /// The plan stops before this step and waits for `rollbackd approve`.
    public var approval: Bool
    /// The live version is asked of this step's strategy (`"version": {"type": "strategy"}`).
    public var version: Bool
    /// Gradual traffic restoration after the whole plan ran (weight-carrying steps only: `haproxy-canary` in
    /// weight mode): each stage sets the weight, then holds it while the triggers judge.
    public var restore: [RestoreStage]

    public init(
        _ strategy: RollbackStrategy, name: String? = nil, timeout: Interval? = nil, onFailure: OnFailure = .halt,
        approval: Bool = false, version: Bool = false, restore: [RestoreStage] = []
    ) {
        self.strategy = strategy
        self.name = name
        self.timeout = timeout
        self.onFailure = onFailure
        self.approval = approval
        self.version = version
        self.restore = restore
    }

    /// Whether the step's strategy carries weights a `restore` schedule can ramp.
    public var carriesWeights: Bool {
        if case let .haproxyCanary(h) = strategy { return h.mode == "weight" }
        return false
    }

    /// Strategies that deploy the application itself (and so can tell which release is live).
    public static let applicationStrategies: Set<String> = [
        "symlink", "systemd-unit", "kubernetes", "docker-swarm", "nginx-blue-green", "haproxy-canary",
    ]

    public var isApplication: Bool { Self.applicationStrategies.contains(strategy.name) }

    /// Why a drill cannot rehearse this step of a plan (nil: it can). A drill rolls back, then forward by running
    /// the same steps toward the original release: a step that deploys a named release (symlink, systemd-unit,
    /// kubernetes, docker-swarm, nginx-blue-green, config) comes back that way; one that only switches something
    /// off does not, and neither does one waiting for a person.
    public var notRehearsable: String? {
        if approval { return "it waits for rollbackd approve, and a drill has no one to approve it" }
        switch strategy {
        case .symlink, .systemdUnit, .kubernetes, .dockerSwarm, .nginxBlueGreen, .config: return nil
        case .haproxyCanary where !restore.isEmpty: return nil
        case .haproxyCanary:
            return
                "it drains the canary, and rolling forward would drain it again, not give its traffic back (a restore schedule would)"
        case .featureFlag: return "it switches the flag off, and rolling forward would switch it off again, not back on"
        case .command: return "its command does what it does; rollbackd cannot tell whether running it again undoes it"
        }
    }

    /// `2 "flags" (feature-flag)` for step index 1, or `2 (feature-flag)` without a name.
    public func label(index: Int) -> String {
        "\(index + 1)" + (name.map { " \(JSONValue.quote($0))" } ?? "") + " (\(strategy.name))"
    }
}

/// One stage of a `restore` schedule: the weight given back to the drained side, then how long the triggers watch
/// it before the next stage (nil: no watch, the next stage follows at once; usual for the last stage).
public struct RestoreStage: Sendable, Equatable {
    public var weight: Int
    public var hold: Interval?

    public init(weight: Int, hold: Interval? = nil) {
        self.weight = weight
        self.hold = hold
    }

    /// HAProxy's server weights range from 0 to 256; 0 is the drain itself.
    public static let weights = 1...256

    /// `10 (hold 30s) -> 50 (hold 1m) -> 100`.
    public static func text(_ schedule: [RestoreStage]) -> String {
        schedule.map { "\($0.weight)" + ($0.hold.map { " (hold \($0))" } ?? "") }.joined(separator: " -> ")
    }
}
