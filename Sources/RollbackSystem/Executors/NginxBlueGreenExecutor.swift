#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// nginx blue-green: the active colour is an upstream include file that rollbackd rewrites atomically, checks with
/// `nginx -t`, and applies with a reload (nginx reloads gracefully: old workers finish their requests). A failed
/// `nginx -t` puts the previous include back, so a later reload cannot pick up a half-done switch.
///
/// Versions are colour names (`blue`, `green`), or — with `versionURLs` — what each colour's URL reports.
public struct NginxBlueGreenExecutor: RollbackExecutor {
    public let config: NginxBlueGreenStrategy
    public let phaseTimeout: Interval
    public let stateDirectory: String
    public var strategyName: String { "nginx-blue-green" }

    public init(_ config: NginxBlueGreenStrategy, phaseTimeout: Interval, stateDirectory: String) {
        self.config = config
        self.phaseTimeout = phaseTimeout
        self.stateDirectory = stateDirectory
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

    /// The colour the include file selects: from rollbackd's marker line, else by matching its `server` lines.
    public func activeColour() throws -> String {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path: config.upstreamFile, limit: 1 << 20) } catch {
            throw fail(error.description)
        }
        let text = String(decoding: bytes, as: UTF8.self)
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
        default:
            throw fail("unknown phase \(phase.name)")
        }
    }
}
