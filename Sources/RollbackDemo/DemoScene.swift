#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem
import RollbackService

extension Demo {
    /// One run of the demo: the work directory, the processes and the daemon, and their clean-up.
    final class Scene {
        let options: Options
        let console: DemoConsole
        let dir: String
        let ports: [Int]
        let configPath: String
        let stateDirectory: String
        var eventsPath: String { dir + "/events.jsonl" }
        let startWall = SystemTime.now()

        private var instances: [ChildProcess] = []
        private var daemon: Daemon?
        private var runTask: Task<Void, Never>?
        private var trafficTask: Task<Void, Never>?
        private var statusTask: Task<Void, Never>?

        init(_ options: Options, console: DemoConsole) throws {
            self.options = options
            self.console = console
            guard access(options.serviceBinary, X_OK) == 0 else {
                throw Failure(
                    "the demo service \(options.serviceBinary) is missing or not executable; `swift build` builds it next to rollbackd (or pass --service-binary)"
                )
            }
            if let d = options.workDirectory {
                try FileIO.makeDirectories(d, mode: 0o755)
                dir = d
            } else {
                var template = Array("/tmp/rollbackd-demo-XXXXXX".utf8CString)
                guard let made = mkdtemp(&template) else {
                    throw SystemError("mkdtemp", path: "/tmp/rollbackd-demo-XXXXXX")
                }
                dir = String(cString: made)
            }
            guard !FileIO.exists(dir + "/current"), !FileIO.exists(dir + "/state/state.json") else {
                throw Failure("\(dir) holds an earlier demo (current, state/state.json); pass an empty --work-dir")
            }
            configPath = dir + "/thresholds.json"
            stateDirectory = dir + "/state"
            var ports: [Int] = []
            for _ in 0..<max(options.instances, 1) { ports.append(try Loopback.freePort()) }
            self.ports = ports
            try FileIO.makeDirectories(dir + "/logs", mode: 0o755)
            try Demo.writeRelease(dir, "v1", errorRate: 0, latencyMs: 5)
            try Demo.writeRelease(dir, "v2", errorRate: options.badErrorRate, latencyMs: 6)
            try Demo.pointLink(dir + "/current", at: dir + "/releases/v1")
            let text = Demo.config(service: "demo-shop", dir: dir, ports: ports, journal: options.journal)
            try FileIO.writeAtomically(path: configPath, bytes: Array(text.utf8), mode: 0o600)
            // The real loader checks the demo table like any other.
            if case let .failure(e) = ConfigFile.load(path: configPath) {
                throw Failure("the demo table is invalid: \(e)")
            }
        }

        func offset(_ t: Timestamp) -> String { "+" + Demo.fixed1((t - startWall).seconds) + "s" }

        func play(_ summary: inout Summary) async throws {
            let badPercent = ValueFormat.percent(options.badErrorRate)
            console.line("rollbackd demo in \(dir)")
            console.line(
                "  releases: v1 (good) and v2 (bad: \(badPercent) of API requests fail), symlink strategy: current -> releases/v1"
            )
            console.line(
                "  table:    critical-error-rate > 10% at 99% evidence (full), latency-degradation P95 > 200% of baseline (semi), health-check-failure > 30% unhealthy at 99% evidence (full); interval 250ms"
            )
            console.line(
                "  events:   \(eventsPath)"
                    + (options.journal
                        ? " and journald (SYSLOG_IDENTIFIER=\(Demo.journalIdentifier))" : " (no journald socket here)"))

            // The instances.
            for (i, port) in ports.enumerated() {
                instances.append(
                    try ChildProcess(
                        [options.serviceBinary, "--port", String(port), "--release-dir", dir + "/current"],
                        log: "\(dir)/logs/instance-\(i + 1).log"))
            }
            try await waitHealthy()
            console.line(
                "  started \(ports.count) instances of rollbackd-demo-service on "
                    + ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))

            // The daemon: the same Daemon and RealWorld as `rollbackd run`, with every event also in events.jsonl.
            let console = self.console
            let start = startWall
            let log = try DemoEventLog(path: eventsPath) { e in
                console.line("\(Demo.fixedOffset(e.at, from: start))  \(Demo.pad(e.kind.rawValue, 20)) \(e.message)")
            }
            let journal: JournalTarget = options.journal ? .journal : .stderr
            let daemon = try Daemon(
                options: DaemonOptions(configPath: configPath, stateDirectory: stateDirectory),
                makeWorld: { t, dir in
                    var world = try RealWorld.make(t, stateDirectory: dir, journal: journal)
                    let notify = world.notify
                    world.notify = { e in
                        await notify(e)
                        await log.record(e)
                    }
                    return world
                })
            self.daemon = daemon
            runTask = Task { await daemon.run(signals: nil) }
            startTraffic()
            startStatus(daemon)

            // v1 live, marked known-good, serving for a while (the windows and the baseline fill).
            try await waitUntil(seconds: 15, "the daemon to see v1 live") {
                await daemon.snapshot().state.ledger.current == "v1"
            }
            do {
                try await ControlHandler.events(daemon) { engine, now throws(EngineRefusal) in
                    try engine.markKnownGood("v1", by: "rollbackd demo", now: now)
                }
            } catch { throw Failure("mark-known-good v1: \(error.message)") }
            try await Task.sleep(for: .milliseconds(options.warmUp.milliseconds))

            // Deploy v2.
            let deployed = SystemTime.now()
            try Demo.pointLink(dir + "/current", at: dir + "/releases/v2")
            console.line("\(offset(deployed))  DEPLOY               current -> releases/v2 (the bad release goes live)")

            // Wait for the story to end: verified, failed verification, failed rollback, or time out.
            let deadline = SystemTime.monotonicMs() + options.timeout.milliseconds
            var end: Event?
            while end == nil {
                for kind in [EventKind.verificationPassed, .verificationFailed, .rollbackFailed, .automationHalted] {
                    if let e = await log.first(kind, after: deployed) { end = e; break }
                }
                if end != nil { break }
                if SystemTime.monotonicMs() > deadline { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let firing = await log.first(.triggerFiring, after: deployed)
            let rbStarted = await log.first(.rollbackStarted, after: deployed)
            let rbFinished = await log.first(.rollbackFinished, after: deployed)
            let verified = await log.first(.verificationPassed, after: deployed)
            func since(_ e: Event?) -> Double? { e.map { ($0.at - deployed).seconds } }
            summary.detectSeconds = since(firing)
            summary.trigger = rbStarted?.trigger ?? firing?.trigger
            summary.rollbackSeconds = since(rbFinished)
            if let s = rbStarted, let f = rbFinished { summary.rollbackDurationSeconds = (f.at - s.at).seconds }
            summary.verifiedRecoverySeconds = since(verified)
            switch end?.kind {
            case .verificationPassed?: summary.outcome = "verified"
            case .verificationFailed?: summary.outcome = "verification_failed"
            case .rollbackFailed?, .automationHalted?: summary.outcome = "rollback_failed"
            default: summary.outcome = firing == nil ? "not_detected" : "rollback_failed"
            }
            summary.detail = end?.message ?? "no verified rollback within \(options.timeout) of the deploy"

            // The incident report is written when the closed incident is saved.
            if let id = rbStarted?.incident ?? firing?.incident {
                summary.incident = id
                let md = "\(stateDirectory)/incidents/\(id).md"
                let js = "\(stateDirectory)/incidents/\(id).json"
                let closed = end != nil
                try? await waitUntil(seconds: 5, "the incident report") {
                    guard FileIO.exists(md), FileIO.exists(js) else { return false }
                    if !closed { return true }
                    return await daemon.snapshot().state.incident(id)?.status == .closed
                }
                if FileIO.exists(md) { summary.report = md }
                if FileIO.exists(js) { summary.reportJSON = js }
                if let incident = await daemon.snapshot().state.incident(id) {
                    summary.evidence = incident.trips.first { $0.trigger == summary.trigger }?.evidence
                    summary.timeline =
                        [((0.0), "deploy", "v2 deployed (current -> releases/v2)")]
                        + incident.timeline.map { (($0.at - deployed).seconds, $0.kind.rawValue, $0.text) }
                }
            }
            summary.live = try? await Executors.make(daemon.snapshot().config.rollback, stateDirectory: stateDirectory)
                .currentVersion()
            statusTask?.cancel()
            console.endStatus()
            report(summary)
        }

        private func report(_ s: Summary) {
            func secs(_ v: Double?) -> String { v.map { Demo.fixed1($0) + "s" } ?? "—" }
            console.line("")
            switch s.outcome {
            case "verified":
                console.line(
                    "RESULT: v2 was detected in \(secs(s.detectSeconds)) (\(s.trigger ?? "?")\(s.evidence.map { ": " + $0 } ?? "")), rolled back to v1 \(secs(s.rollbackSeconds)) after the deploy (the rollback itself took \(s.rollbackDurationSeconds.map { ValueFormat.format($0, unit: .seconds) } ?? "—")), recovery verified \(secs(s.verifiedRecoverySeconds)) after the deploy. Live now: \(s.live ?? "?")."
                )
            default:
                console.line("RESULT: \(s.outcome): \(s.detail)")
            }
            if !s.timeline.isEmpty {
                console.line("")
                console.line("Incident \(s.incident ?? "") timeline (seconds after the deploy):")
                for t in s.timeline {
                    let off = "+" + Demo.fixed1(t.offset) + "s"
                    console.line(
                        String(repeating: " ", count: max(0, 8 - off.count)) + off
                            + "  \(Demo.pad(t.kind, 20)) \(t.text)")
                }
            }
            console.line("")
            if let r = s.report { console.line("incident report:  \(r)") }
            if let r = s.reportJSON { console.line("                  \(r)") }
            console.line("event log:        \(eventsPath)")
            if options.journal {
                console.line(
                    "journal:          journalctl -t \(Demo.journalIdentifier) -o verbose   or   rollbackd history --identifier \(Demo.journalIdentifier) --since 10m"
                )
            }
            console.line("state:            \(stateDirectory)/state.json (release ledger, incidents)")
        }

        private func waitHealthy() async throws {
            let client = HTTPClient(maxConnections: 8)
            let urls = ports.map { "http://127.0.0.1:\($0)/healthz" }
            try await waitUntil(seconds: 10, "the instances to answer /healthz (logs in \(dir)/logs)") {
                let results = await client.sendAll(urls.map { HTTPRequest.get($0, options: HTTPOptions()) })
                return results.allSatisfy { (try? $0.get())?.isSuccess == true }
            }
        }

        private func waitUntil(seconds: Double, _ what: String, _ condition: () async -> Bool) async throws {
            let deadline = SystemTime.monotonicMs() + Int64(seconds * 1000)
            while !(await condition()) {
                try Task.checkCancellation()
                if SystemTime.monotonicMs() > deadline {
                    throw Failure("timed out after \(Demo.fixed1(seconds))s waiting for \(what)")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        }

        /// Steady API traffic to every instance (a few requests every 50 ms each).
        private func startTraffic() {
            let urls = ports.map { "http://127.0.0.1:\($0)/api/checkout" }
            trafficTask = Task.detached {
                let client = HTTPClient(maxConnections: 16)
                while !Task.isCancelled {
                    _ = await client.sendAll(
                        urls.flatMap { u in (0..<2).map { _ in HTTPRequest.get(u, options: HTTPOptions()) } })
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
        }

        private func startStatus(_ daemon: Daemon) {
            let console = self.console
            let start = startWall
            let every: Int64 = console.isTerminal ? 250 : 1000
            statusTask = Task.detached {
                while !Task.isCancelled {
                    let snap = await daemon.snapshot()
                    console.status(
                        Demo.statusLine(snap.config, snap.state, snap.samples, now: SystemTime.now(), start: start))
                    try? await Task.sleep(for: .milliseconds(every))
                }
            }
        }

        /// Stops everything this scene started and removes the release tree; keeps the state, logs and events.
        func tearDown() async {
            statusTask?.cancel()
            console.endStatus()
            trafficTask?.cancel()
            await trafficTask?.value
            if let daemon {
                await daemon.stop()
                await runTask?.value
            }
            for child in instances { child.stop() }
            instances = []
            unlink(dir + "/current")
            FileIO.removeTree(dir + "/releases")
        }
    }

    // MARK: formatting

    static func fixed1(_ v: Double) -> String {
        let tenths = Int64((v * 10).rounded())
        let sign = tenths < 0 ? "-" : ""
        let a = abs(tenths)
        return "\(sign)\(a / 10).\(a % 10)"
    }

    static func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s : s + String(repeating: " ", count: n - s.count)
    }

    static func fixedOffset(_ t: Timestamp, from start: Timestamp) -> String {
        let s = "+" + fixed1((t - start).seconds) + "s"
        return String(repeating: " ", count: max(0, 7 - s.count)) + s
    }

    /// `+7.4s v2 watching | errors 18.3% | p95 9.6ms | unhealthy 0% | critical-error-rate pending 1/3, 2 ok`:
    /// what is happening first, so a narrow terminal cuts the least useful end.
    static func statusLine(
        _ config: Thresholds, _ state: EngineState, _ samples: [String: SampleValue], now: Timestamp, start: Timestamp
    ) -> String {
        var head = fixedOffset(now, from: start) + " "
        if let o = state.activeRollback {
            head += "\(o.from) -> \(o.to) rolling back"
        } else if let v = state.verification {
            head += "\(v.to) verifying (\(fixed1(max(0, (v.deadline - now).seconds)))s left)"
        } else if let h = state.halted {
            head += "halted: \(h.reason)"
        } else {
            head += (state.ledger.current ?? "?") + " watching"
        }
        var parts = [head]
        for m in config.metrics {
            let text: String
            switch samples[m.name] {
            case let .value(v)?:
                switch m.unit {
                case .ratio: text = fixed1(v * 100) + "%"
                case .seconds: text = fixed1(v * 1000) + "ms"
                default: text = ValueFormat.format(v, unit: m.unit)
                }
            case .noData?: text = "no data"
            case nil: text = "-"
            }
            parts.append("\(m.name) \(text)")
        }
        var ok = 0
        var notOk: [String] = []
        for t in config.triggers {
            let s = state.triggers[t.name] ?? TriggerState()
            switch s.phase {
            case .ok where (s.evidence?.strength ?? 0) > 0:
                // Errors seen, not yet evidence: how far the test has come.
                ok += 1
                if let e = s.evidence {
                    notOk.append(
                        "\(t.name) evidence \(fixed1(e.strength * 100))% (\(e.total.events)/\(e.total.trials))")
                }
            case .ok: ok += 1
            case .pending: notOk.append("\(t.name) pending \(s.count)/\(t.breaches)")
            case .recovering: notOk.append("\(t.name) recovering \(s.count)/\(t.clears)")
            default:
                let counts = s.evidence.map { " (\($0.total.events)/\($0.total.trials))" } ?? ""
                notOk.append("\(t.name) \(s.phase.rawValue)\(counts)")
            }
        }
        parts.append(
            notOk.isEmpty ? "all \(ok) triggers ok" : (notOk + (ok > 0 ? ["\(ok) ok"] : [])).joined(separator: ", "))
        return parts.joined(separator: " | ")
    }
}
