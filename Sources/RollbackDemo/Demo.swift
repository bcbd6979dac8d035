#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem
import RollbackService

/// `rollbackd demo`: the whole story on loopback, without root, systemd or configuration. Releases `v1` (good) and
/// `v2` (bad: `badErrorRate` of the API requests fail) are laid out for the `symlink` strategy in a work
/// directory; `instances` copies of `rollbackd-demo-service` serve `current`; the real daemon (the same `Daemon`
/// and `RealWorld` as `rollbackd run`, in this process) watches them at a 250 ms interval with a demo table while
/// traffic is driven; v1 is marked known-good, v2 is deployed, and the daemon detects, rolls back, verifies and
/// writes its incident report. Processes and release trees are removed at the end (also when interrupted); the
/// state directory (incident reports), the event log and the config stay for reading.
public enum Demo {
    public struct Options: Sendable {
        /// The `rollbackd-demo-service` executable.
        public var serviceBinary: String
        /// Where to lay everything out (created; default: a new `/tmp/rollbackd-demo-XXXXXX`).
        public var workDirectory: String?
        public var instances: Int
        public var badErrorRate: Double
        /// How long v1 serves before v2 is deployed (its traffic fills the metric windows and the baseline).
        public var warmUp: Interval
        /// Give up when the bad release is not rolled back and verified this long after the deploy.
        public var timeout: Interval
        /// Events to journald (identifier `rollbackd-demo`) when its socket exists; always to `events.jsonl`.
        public var journal: Bool

        public init(
            serviceBinary: String, workDirectory: String? = nil, instances: Int = 3, badErrorRate: Double = 0.3,
            warmUp: Interval = .seconds(4), timeout: Interval = .seconds(60),
            journal: Bool = JournalWriter.socketExists(JournalWriter.defaultSocketPath)
        ) {
            self.serviceBinary = serviceBinary
            self.workDirectory = workDirectory
            self.instances = instances
            self.badErrorRate = badErrorRate
            self.warmUp = warmUp
            self.timeout = timeout
            self.journal = journal
        }
    }

    public static let journalIdentifier = "rollbackd-demo"

    /// What happened, for `--json` and the test.
    public struct Summary: Sendable {
        /// `verified`, `verification_failed`, `rollback_failed`, `not_detected`, `interrupted` or `error`.
        public var outcome = "error"
        public var detail = ""
        /// From the deploy of v2 to the trigger firing, to the rollback finished (v1 live again), to the
        /// verification passing. `rollbackDurationSeconds`: the rollback phases alone.
        public var detectSeconds: Double?
        public var rollbackSeconds: Double?
        public var rollbackDurationSeconds: Double?
        public var verifiedRecoverySeconds: Double?
        public var wallSeconds = 0.0
        public var trigger: String?
        /// The counts and strength of evidence the trigger fired on.
        public var evidence: String?
        public var incident: String?
        public var report: String?
        public var reportJSON: String?
        public var events = ""
        public var journalIdentifier: String?
        public var workDirectory = ""
        public var instances = 0
        /// The release live when the story ended (before clean-up removed the release tree).
        public var live: String?
        public var timeline: [(offset: Double, kind: String, text: String)] = []

        public var json: JSONValue {
            func num(_ v: Double?) -> JSONValue { v.map { .number(($0 * 1000).rounded() / 1000) } ?? .null }
            func str(_ v: String?) -> JSONValue { v.map { .string($0) } ?? .null }
            return .object([
                ("outcome", .string(outcome)), ("detail", .string(detail)),
                ("detectSeconds", num(detectSeconds)), ("rollbackSeconds", num(rollbackSeconds)),
                ("rollbackDurationSeconds", num(rollbackDurationSeconds)),
                ("verifiedRecoverySeconds", num(verifiedRecoverySeconds)), ("wallSeconds", num(wallSeconds)),
                ("from", .string("v2")), ("to", .string("v1")), ("live", str(live)), ("trigger", str(trigger)),
                ("evidence", str(evidence)),
                ("incident", str(incident)), ("report", str(report)), ("reportJSON", str(reportJSON)),
                ("events", .string(events)), ("journalIdentifier", str(journalIdentifier)),
                ("workDirectory", .string(workDirectory)), ("instances", .number(Double(instances))),
                (
                    "timeline",
                    .array(
                        timeline.map {
                            .object([
                                ("offsetSeconds", num($0.offset)), ("kind", .string($0.kind)),
                                ("text", .string($0.text)),
                            ])
                        })
                ),
            ])
        }
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ d: String) { description = d }
    }

    /// Runs the demo; cancel the calling task to interrupt it (clean-up still runs). `console` gets the story.
    public static func run(_ options: Options, console: DemoConsole) async -> Summary {
        let started = SystemTime.monotonicMs()
        var summary = Summary()
        summary.instances = options.instances
        summary.journalIdentifier = options.journal ? journalIdentifier : nil
        let scene: Scene
        do {
            scene = try Scene(options, console: console)
        } catch {
            summary.detail = "\(error)"
            console.line("rollbackd demo: \(error)")
            return summary
        }
        summary.workDirectory = scene.dir
        summary.events = scene.eventsPath
        do {
            try await scene.play(&summary)
        } catch is CancellationError {
            summary.outcome = "interrupted"
            summary.detail = "interrupted; cleaning up"
            console.endStatus()
            console.line("interrupted: stopping the daemon and the instances, removing the releases")
        } catch {
            summary.detail = "\(error)"
            console.endStatus()
            console.line("rollbackd demo: \(error)")
        }
        await scene.tearDown()
        summary.wallSeconds = Double(SystemTime.monotonicMs() - started) / 1000
        console.line(
            "cleaned up: instances and daemon stopped, \(scene.dir)/releases removed; kept \(scene.dir)/state, events.jsonl, thresholds.json and logs/"
        )
        return summary
    }

    /// The demo table: the first three rows of the design's severity/trigger table, with demo-sized windows.
    /// `top` goes into the top-level object (`, "fleet": {…}` for the fleet demo's hosts).
    static func config(
        service: String, dir: String, ports: [Int], journal: Bool, interval: String = "250ms", top: String = ""
    ) -> String {
        let instances = ports.map { "\"http://127.0.0.1:\($0)\"" }.joined(separator: ", ")
        return """
            {
              "service": "\(service)",
              "interval": "\(interval)",
              "instances": [\(instances)],
              "metrics": {
                "errors": {"type": "scrape", "path": "/metrics", "measure": "errorRatio", "counter": "http_requests_total",
                               "errorLabels": {"code": "5.."}, "window": "3s", "description": "share of 5xx API responses"},
                "p95": {"type": "scrape", "path": "/metrics", "measure": "quantile", "quantile": 0.95,
                                "histogram": "http_request_duration_seconds", "window": "3s"},
                "unhealthy": {"type": "probe", "path": "/healthz", "measure": "unhealthyRatio", "timeout": "1s"}
              },
              "triggers": [
                {"name": "critical-error-rate", "metric": "errors", "condition": {"above": 0.1}, "confidence": 0.99,
                 "severity": "critical", "respondWithin": "2m", "automation": "full"},
                {"name": "latency-degradation", "metric": "p95", "condition": {"aboveBaseline": 2.0}, "breaches": 12,
                 "clears": 8, "severity": "high", "respondWithin": "5m", "automation": "semi"},
                {"name": "health-check-failure", "metric": "unhealthy", "condition": {"above": 0.3}, "confidence": 0.99,
                 "severity": "critical", "respondWithin": "2m", "automation": "full"}
              ],
              "rollback": {"strategy": "symlink", "symlink": {"releasesDir": "\(dir)/releases", "currentLink": "\(dir)/current"},
                           "phaseTimeout": "10s"},
              "safety": {"cooldown": "0s", "budget": {"max": 5, "window": "1h"}, "deployWindow": "10m", "soak": "1h",
                         "verifyFor": "8s", "baselineWindow": "30s", "blindAfter": 3},
              "notify": {"journal": {"enabled": \(journal), "identifier": "\(journalIdentifier)"}, "webhooks": []}\(top)
            }

            """
    }

    static func writeRelease(_ dir: String, _ version: String, errorRate: Double, latencyMs: Double) throws(SystemError)
    {
        try FileIO.makeDirectories("\(dir)/releases/\(version)", mode: 0o755)
        let json = JSONValue.object([
            ("version", .string(version)), ("errorRate", .number(errorRate)),
            ("latencyMs", .number(latencyMs)), ("healthy", .bool(true)),
        ])
        try FileIO.writeAtomically(
            path: "\(dir)/releases/\(version)/release.json", bytes: Array((json.serialized + "\n").utf8), mode: 0o644)
    }

    /// `ln -sfn` done atomically: a new link renamed over the old one (what a deploy tool does).
    static func pointLink(_ link: String, at target: String) throws(SystemError) {
        try FileIO.replaceSymlink(link, target: target, temp: "\(link).deploy.\(getpid())")
    }
}

/// Every event the daemon reports, kept in order, appended to `events.jsonl` (the demo's journal when there is
/// no journald) and told to the console.
actor DemoEventLog {
    private let fd: Int32
    private(set) var events: [Event] = []
    private let onEvent: @Sendable (Event) -> Void

    init(path: String, onEvent: @escaping @Sendable (Event) -> Void) throws(SystemError) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        self.onEvent = onEvent
    }

    deinit { close(fd) }

    func record(_ e: Event) {
        events.append(e)
        let bytes = Array((EventJSON.value(e).serialized + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        onEvent(e)
    }

    func first(_ kind: EventKind, after: Timestamp) -> Event? {
        events.first { $0.kind == kind && $0.at >= after }
    }
}
