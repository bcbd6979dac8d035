#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// nginx blue-green: the active colour is an upstream include file that rollbackd rewrites atomically, checks with
/// `nginx -t`, and applies with a reload (nginx reloads gracefully: old workers finish their requests). A failed
/// `nginx -t` puts the previous include back, so a later reload cannot pick up a half-done switch.
///
/// Versions are colour names (`blue`, `green`), or — with `versionURLs` — what each colour's URL reports.
///
/// In a plan, a `restore` schedule (two colours) gives traffic back to the colour the rollback took out (the
/// restored colour) after every step ran: each stage `restore-<N>` writes an upstream holding both colours, with
/// weights that give the restored colour N % of the requests (at 100 the other colour's servers are `down`), runs
/// the test and the reload, and reads the include back to confirm N %. The marker line keeps naming the colour the
/// rollback routed to, which is how a resumed stage tells the two apart. A trigger firing during a hold writes the
/// rollback's upstream again (that colour only).
public struct NginxBlueGreenExecutor: RestoringExecutor {
    public let config: NginxBlueGreenStrategy
    public let phaseTimeout: Interval
    public let stateDirectory: String
    public let restore: [RestoreStage]
    public var strategyName: String { "nginx-blue-green" }

    public init(
        _ config: NginxBlueGreenStrategy, phaseTimeout: Interval, stateDirectory: String, restore: [RestoreStage] = []
    ) {
        self.config = config
        self.phaseTimeout = phaseTimeout
        self.stateDirectory = stateDirectory
        self.restore = restore
    }

    func fail(_ message: String) -> ExecutorError { ExecutorError(strategyName, message) }

    static let marker = "# Written by rollbackd (nginx-blue-green): active colour "

    /// The include file for `colour`.
    public func upstreamText(colour: String) -> String {
        var s = "\(Self.marker)\(colour).\n# Rewritten atomically on rollback; edit thresholds.json, not this file.\n"
        s += "upstream \(config.upstreamName) {\n"
        for server in config.colors[colour] ?? [] { s += "    server \(server);\n" }
        return s + "}\n"
    }

    /// The include file of a restore stage: `kept`'s and `restored`'s servers with weights that give `restored`
    /// `percent` % of the requests (round robin weighs servers: each restored server gets `percent` × the number of
    /// kept servers, each kept one (100 − `percent`) × the number of restored ones; 0 is `down`, nginx has no
    /// weight 0).
    public func restoreText(kept: String, restored: String, percent: Int) -> String {
        let keptServers = config.colors[kept] ?? [], restoredServers = config.colors[restored] ?? []
        var s = "\(Self.marker)\(kept).\n\(Self.restoreMarker)\(restored) \(percent) %.\n"
        s += "# Rewritten atomically on rollback; edit thresholds.json, not this file.\n"
        s += "upstream \(config.upstreamName) {\n"
        let keptWeight = (100 - percent) * restoredServers.count
        for server in keptServers {
            s += "    server \(server) " + (keptWeight > 0 ? "weight=\(keptWeight)" : "down") + ";\n"
        }
        for server in restoredServers { s += "    server \(server) weight=\(percent * keptServers.count);\n" }
        return s + "}\n"
    }

    static let restoreMarker = "# Restore schedule: traffic given back to colour "

    /// The restored colour's share of the requests, in percent, by the weights of the include file's `server` lines
    /// (nil when the file does not hold both colours' servers with those weights).
    public func restoredShare(restored: String) throws -> Double? {
        let text = String(decoding: try readInclude(), as: UTF8.self)
        let mine = Set(config.colors[restored] ?? [])
        var restoredWeight = 0, total = 0
        for line in text.split(separator: "\n") {
            var f = ExecText.fields(ExecText.trim(line))
            guard f.count >= 2, f[0] == "server" else { continue }
            if let last = f.last, last.hasSuffix(";") { f[f.count - 1] = String(last.dropLast()) }
            f.removeAll { $0.isEmpty }
            if f.dropFirst(2).contains("down") { continue }
            let weight = f.dropFirst(2).first { $0.hasPrefix("weight=") }.flatMap { Int($0.dropFirst(7)) } ?? 1
            total += weight
            if mine.contains(f[1]) { restoredWeight += weight }
        }
        guard total > 0 else { return nil }
        return Double(restoredWeight) * 100 / Double(total)
    }

    func readInclude() throws(ExecutorError) -> [UInt8] {
        do { return try FileIO.readAll(path: config.upstreamFile, limit: 1 << 20) } catch {
            throw fail(error.description)
        }
    }

    /// The colour a restore schedule gives traffic back to: the one of the two that the rollback did not route to.
    func restoredColour(kept: String) throws -> String {
        let others = config.colors.keys.sorted().filter { $0 != kept }
        guard config.colors.count == 2, let other = others.first else {
            throw fail(
                "a restore schedule needs exactly two colours (colours: \(config.colors.keys.sorted().joined(separator: ", ")))"
            )
        }
        return other
    }

    public func restoreAction(weight: Int) -> String {
        "write \(config.upstreamFile): upstream \(config.upstreamName) with both colours, weighted so that the colour taken out gets \(weight) % of the requests\(weight == 100 ? " (the other colour's servers down)" : ""); run \(ProcessRunner.display(config.test)), then \(ProcessRunner.display(config.reload)); read the include back: \(weight) %"
    }

    public var drainAgainAction: String {
        "writes the rollback's upstream again (the restored colour out), tests and reloads nginx"
    }

    /// Writes `text` as the include, tests it (putting `fallback` back when the test fails) and reloads nginx.
    func apply(_ text: String, fallback: String, plan: RollbackPlan, timeout: Interval) async throws {
        let env = RollbackEnvironment.of(plan)
        func write(_ t: String) throws(ExecutorError) {
            do {
                try FileIO.writeAtomically(
                    path: config.upstreamFile, bytes: Array(t.utf8), mode: Paths.mode(config.upstreamFile) ?? 0o644)
            } catch {
                throw fail("cannot write \(config.upstreamFile): \(error.description)")
            }
        }
        try write(text)
        let r = try await Command.output(config.test, strategy: strategyName, environment: env, timeout: timeout)
        guard r.succeeded else {
            let why = "\(ProcessRunner.display(config.test)): \(r.summary(timeout: timeout))"
            do { try write(fallback) } catch { throw fail("\(why); and \(error.message)") }
            throw fail("\(why); wrote the rollback's \(config.upstreamFile) back; nginx was not reloaded")
        }
        _ = try await Command.run(config.reload, strategy: strategyName, environment: env, timeout: timeout)
    }

    /// A restore stage: the restored colour gets `percent` % of the requests, confirmed by reading the include back.
    func restoreStage(_ percent: Int, plan: RollbackPlan, timeout: Interval) async throws {
        let kept = try activeColour()
        let restored = try restoredColour(kept: kept)
        for server in config.colors[restored] ?? [] {
            if let why = await TCPProbe.check(server, timeout: timeout) {
                throw fail("colour \(restored) is not answering, so it gets no traffic back: \(why)")
            }
        }
        try await apply(
            restoreText(kept: kept, restored: restored, percent: percent), fallback: upstreamText(colour: kept),
            plan: plan, timeout: timeout)
        let share = try restoredShare(restored: restored)
        guard let share, abs(share - Double(percent)) < 0.01 else {
            throw fail(
                "\(config.upstreamFile) gives colour \(restored) \(share.map { ValueFormat.trim($0) + " %" } ?? "no traffic") after stage \(percent) %, not \(percent) %"
            )
        }
        if let check = config.checkURL {
            try await NginxVersionProbe.expect2xx(url: check, within: timeout, strategy: strategyName)
        }
    }

    public func drainAgain(after hold: RollbackPhase, of plan: RollbackPlan) async throws -> String {
        let kept = try activeColour()
        let restored = try restoredColour(kept: kept)
        let text = upstreamText(colour: kept)
        try await apply(text, fallback: text, plan: plan, timeout: phaseTimeout)
        return
            "\(config.upstreamFile) routes upstream \(config.upstreamName) to colour \(kept) only again (colour \(restored) out)"
    }

    /// The colour the include file selects: from rollbackd's marker line, else by matching its `server` lines.
    public func activeColour() throws -> String {
        let text = String(decoding: try readInclude(), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix(Self.marker) {
            var c = line.dropFirst(Self.marker.count)
            if c.hasSuffix(".") { c = c.dropLast() }
            if config.colors[String(c)] != nil { return String(c) }
        }
        var servers = Set<String>()
        for line in text.split(separator: "\n") {
            let f = ExecText.fields(ExecText.trim(line))
            if f.count >= 2, f[0] == "server" {
                servers.insert(f[1].hasSuffix(";") ? String(f[1].dropLast()) : f[1])
            }
        }
        for (colour, list) in config.colors where Set(list) == servers { return colour }
        throw fail(
            "\(config.upstreamFile) selects none of the colours \(config.colors.keys.sorted().joined(separator: ", "))")
    }

    public func currentVersion() async throws -> String {
        let colour = try activeColour()
        if let url = config.versionURLs[colour] {
            return try await NginxVersionProbe.version(url: url, strategy: strategyName)
        }
        return colour
    }

    public func availableVersions() async throws -> [String] {
        var out: [String] = []
        for colour in config.colors.keys.sorted() {
            if let url = config.versionURLs[colour] {
                if let v = try? await NginxVersionProbe.version(url: url, strategy: strategyName) { out.append(v) }
            } else {
                out.append(colour)
            }
        }
        return out
    }

    /// The colour that runs `version`: a colour name, or the colour whose version URL reports it.
    func colour(for version: String) async throws -> String {
        if config.colors[version] != nil && config.versionURLs[version] == nil { return version }
        for colour in config.colors.keys.sorted() {
            guard let url = config.versionURLs[colour] else { continue }
            if let v = try? await NginxVersionProbe.version(url: url, strategy: strategyName), v == version {
                return colour
            }
        }
        if config.colors[version] != nil { return version }
        throw fail("no colour runs \(version) (colours: \(config.colors.keys.sorted().joined(separator: ", ")))")
    }

    public func precheck(target: String) async throws {
        let colour = try await colour(for: target)
        for server in config.colors[colour] ?? [] {
            if let why = await TCPProbe.check(server, timeout: .seconds(2)) {
                throw fail("colour \(colour) is not answering: \(why)")
            }
        }
        guard access(FileIO.directory(of: config.upstreamFile), W_OK) == 0 else {
            throw fail(
                "\(FileIO.directory(of: config.upstreamFile)) is not writable (the include is replaced by a rename)")
        }
    }

    public func plan(from: String, to: String, incident: String) -> RollbackPlan {
        let colourText = config.colors[to] != nil ? "colour \(to)" : "the colour running \(to)"
        var verify = "the servers of \(colourText) accept connections"
        if let check = config.checkURL { verify += "; \(check) answers 2xx through nginx" }
        return RollbackPlan(
            strategy: strategyName, from: from, to: to, incident: incident,
            phases: [
                RollbackPhase(
                    name: "write-upstream",
                    description:
                        "write \(config.upstreamFile): upstream \(config.upstreamName) -> \(colourText) (temp + fsync + rename; previous copy kept)",
                    timeout: phaseTimeout),
                RollbackPhase(
                    name: "test",
                    description: "run \(ProcessRunner.display(config.test)); on failure put the previous include back",
                    timeout: phaseTimeout),
                RollbackPhase(
                    name: "reload", description: "run \(ProcessRunner.display(config.reload))", timeout: phaseTimeout),
                RollbackPhase(name: "verify", description: verify, timeout: phaseTimeout),
            ])
    }

    public func run(phase: RollbackPhase, of plan: RollbackPlan) async throws {
        let env = RollbackEnvironment.of(plan)
        let copies = SavedCopies(stateDirectory: stateDirectory, strategy: strategyName, plan: plan)
        switch phase.name {
        case "write-upstream":
            let colour = try await colour(for: plan.to)
            let wanted = Array(upstreamText(colour: colour).utf8)
            if let live = try? FileIO.readAll(path: config.upstreamFile, limit: 1 << 20), live == wanted { return }
            try copies.save(index: 0, of: config.upstreamFile, strategy: strategyName)
            do {
                try FileIO.writeAtomically(
                    path: config.upstreamFile, bytes: wanted, mode: Paths.mode(config.upstreamFile) ?? 0o644)
            } catch {
                throw fail("cannot write \(config.upstreamFile): \(error.description)")
            }
        case "test":
            let r = try await Command.output(
                config.test, strategy: strategyName, environment: env, timeout: phase.timeout)
            guard r.succeeded else {
                let why = "\(ProcessRunner.display(config.test)): \(r.summary(timeout: phase.timeout))"
                let restored: [String]
                do { restored = try copies.restore([config.upstreamFile], strategy: strategyName) } catch {
                    throw fail("\(why); and \(error.message)")
                }
                throw fail(
                    "\(why); \(restored.isEmpty ? "the include had not changed" : "put the previous \(config.upstreamFile) back"); nginx was not reloaded"
                )
            }
        case "reload":
            _ = try await Command.run(config.reload, strategy: strategyName, environment: env, timeout: phase.timeout)
        case "verify":
            let colour = try await colour(for: plan.to)
            for server in config.colors[colour] ?? [] {
                if let why = await TCPProbe.check(server, timeout: phase.timeout) {
                    throw fail("colour \(colour) is not answering after the reload: \(why)")
                }
            }
            if let check = config.checkURL {
                try await NginxVersionProbe.expect2xx(url: check, within: phase.timeout, strategy: strategyName)
            }
        case let name where name.hasPrefix("restore-"):
            guard let percent = restoreWeight(phase: name) else { throw fail("unknown phase \(phase.name)") }
            try await restoreStage(percent, plan: plan, timeout: phase.timeout)
        default:
            throw fail("unknown phase \(phase.name)")
        }
    }
}
