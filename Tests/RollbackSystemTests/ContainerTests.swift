#if canImport(Glibc)
import Glibc
#endif
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

/// A real systemd (Debian bookworm, debootstrap + systemd-nspawn, driven by Tests/Integration/container.sh) with
/// rollbackd installed the way `make install` installs it. What is checked here does not need the daemon's run
/// loop: the units load, the user exists, the executor socket admits only root and group rollbackd, and both
/// sandboxes let the real binary (or a stand-in for `rollbackd execute`) do exactly what the shipped strategy needs.
/// The daemon scenarios of issue 6 (scenario-* in container.sh) run in `daemonScenariosInARealSystemd`.
@Suite struct ContainerTests {
    static let script = RepoPaths.root + "/Tests/Integration/container.sh"

    /// Runs `container.sh ARGS…`; a failure carries the script's own reason (its stderr).
    @discardableResult
    static func sh(_ args: [String], timeout: Interval = .seconds(60)) async throws -> String {
        let r = try await ProcessRunner.run(
            [script] + args,
            environment: ["ROLLBACKD_BIN": RepoPaths.binary], timeout: timeout)
        guard r.succeeded else {
            throw TestFailure(
                "container.sh \(ProcessRunner.display(args)): \(r.summary(timeout: timeout))\n"
                    + r.stderrText.split(separator: "\n").suffix(25).joined(separator: "\n"))
        }
        return r.stdoutText.trimmingSuffix("\n")
    }

    @discardableResult
    static func inside(_ name: String, _ argv: [String], timeout: Interval = .seconds(60)) async throws -> String {
        try await sh(["exec", name] + argv, timeout: timeout)
    }

    /// connect() to the executor socket as `user`; returns errno (0 = connected).
    static func connectErrno(_ name: String, as user: String, group: String) async throws -> String {
        let probe = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect("/run/rollbackd-exec.sock")
            except OSError as e:
                print(e.errno); sys.exit(0)
            print(0)
            """
        let groups = user == "nobody" ? "--clear-groups" : "--init-groups"
        return try await inside(
            name, ["setpriv", "--reuid=" + user, "--regid=" + group, groups, "python3", "-c", probe])
    }

    /// Boots a container from the prepared root, runs `body` with its name, and always stops it. The binary must
    /// be built; a fresh machine debootstraps once (about 1.5 min), later runs reuse the cached root.
    static func withContainer(_ prefix: String, _ body: (String) async throws -> Void) async throws {
        guard access(RepoPaths.binary, X_OK) == 0 else {
            Issue.record("no rollbackd binary at \(RepoPaths.binary): run `swift build` first")
            return
        }
        try await sh(["prepare"], timeout: .minutes(12))
        let name = "\(prefix)-\(getpid())"
        try await sh(["boot", name], timeout: .seconds(120))
        do {
            try await body(name)
        } catch {
            _ = try? await sh(["stop", name])
            throw error
        }
        try await sh(["stop", name])
    }

    @Test(.timeLimit(.minutes(15)))
    func installedUnitsInARealSystemd() async throws {
        try await Self.withContainer("rbd-smoke") { try await checks($0) }
    }

    func checks(_ name: String) async throws {
        try await Self.sh(["install", name])

        // The units load, from where `make install` puts them.
        let cat = try await Self.inside(
            name,
            [
                "systemctl", "cat", "rollbackd.service", "rollbackd@example-api.service",
                "rollbackd-exec.socket", "rollbackd-exec@0-1-2.service",
            ])
        #expect(cat.contains("# /usr/local/lib/systemd/system/rollbackd.service"))
        #expect(cat.contains("ExecStart=/usr/local/bin/rollbackd run --config /etc/rollbackd/thresholds.json"))
        #expect(cat.contains("# /usr/local/lib/systemd/system/rollbackd@.service"))
        #expect(cat.contains("# /usr/local/lib/systemd/system/rollbackd-exec.socket"))
        let load = try await Self.inside(
            name,
            [
                "systemctl", "show", "-P", "LoadState", "rollbackd.service",
                "rollbackd@example-api.service", "rollbackd-exec.socket",
                "rollbackd-exec@0-1-2.service",
            ])
        #expect(load.split(separator: "\n") == ["loaded", "loaded", "loaded", "loaded"], "LoadState: \(load)")

        // The system user, and the config handed to its group.
        let user = try await Self.inside(name, ["getent", "passwd", "rollbackd"])
        #expect(user.hasPrefix("rollbackd:x:") && user.hasSuffix(":/var/lib/rollbackd:/usr/sbin/nologin"), "\(user)")
        let config = try await Self.inside(name, ["stat", "-c", "%a %U:%G", "/etc/rollbackd/thresholds.json"])
        #expect(config == "640 root:rollbackd")

        // The executor socket: root:rollbackd 0660, listening; nobody is refused, rollbackd gets in.
        try await Self.inside(name, ["systemctl", "start", "rollbackd-exec.socket"])
        let socket = try await Self.inside(name, ["stat", "-c", "%a %U:%G %F", "/run/rollbackd-exec.sock"])
        #expect(socket == "660 root:rollbackd socket")
        let active = try await Self.inside(name, ["systemctl", "is-active", "rollbackd-exec.socket"])
        #expect(active == "active")
        #expect(
            try await Self.connectErrno(name, as: "nobody", group: "nogroup") == "13",
            "a user outside group rollbackd must get EACCES (13)")
        #expect(try await Self.connectErrno(name, as: "rollbackd", group: "rollbackd") == "0")
        let accepted = try await Self.inside(name, ["systemctl", "show", "-P", "NAccepted", "rollbackd-exec.socket"])
        #expect(accepted == "1", "the socket accepted \(accepted) connections; only rollbackd's should count")

        // The journal catalog, once systemd/rollbackd.catalog is in the tree: installed where journalctl reads it.
        if access(RepoPaths.root + "/systemd/rollbackd.catalog", R_OK) == 0 {
            let catalog = try await Self.inside(name, ["journalctl", "--list-catalog"])
            #expect(catalog.contains("rollbackd"), "journalctl --list-catalog has no rollbackd entry")
        }

        // The sandboxes, for real.
        let daemon = try await Self.sh(["probe-daemon-sandbox", name])
        #expect(daemon.hasPrefix("probe-daemon-sandbox:"))
        let exec = try await Self.sh(["probe-exec-sandbox", name])
        #expect(exec.hasPrefix("probe-exec-sandbox:"))
    }
}

extension ContainerTests {
    /// Issue 6's "done when", under a booted systemd with the units `make install` installs: READY only after the
    /// first tick, the STATUS line, the daemon as user rollbackd, the executor socket refusing outsiders, an
    /// operator in the supplementary group rollbackd served (and one outside it told which group), a bad
    /// release rolled back through the privileged executor unit with its decision in the journal, reload with a
    /// valid and an invalid config, a hung loop killed by the watchdog, kill -9 of the daemon and of the executor
    /// at each phase ending exactly as an uncrashed rollback, and a clean stop. Each scenario is in container.sh
    /// and says what it checked; they run in order on one container (they build on each other's state).
    @Test(.timeLimit(.minutes(20)))
    func daemonScenariosInARealSystemd() async throws {
        try await Self.withContainer("rbd-scen") { name in
            try await Self.sh(["install", name])
            var scenarios: [[String]] = [
                ["ready"], ["status"], ["nonroot"], ["exec-refused"], ["operators"], ["rollback"], ["reload"],
                ["watchdog"],
            ]
            for phase in ["swap", "reload"] {
                for who in ["daemon", "executor"] { scenarios.append(["kill9", phase, who]) }
            }
            scenarios.append(["stop"])
            for scenario in scenarios {
                let args = ["scenario-" + scenario[0], name] + scenario.dropFirst()
                let said = try await Self.sh(args, timeout: .minutes(3))
                #expect(
                    said.hasPrefix("scenario-\(scenario[0]):"),
                    "container.sh \(args.joined(separator: " ")) said: \(said)")
            }
        }
    }

    /// The two builds of the Debian package `make test` makes before the tests (`make deb` with DEB_REVISION 1 and 2,
    /// the same version otherwise): the newest pair in .build/deb.
    static func debianPackages() throws -> (first: String, second: String) {
        let dir = RepoPaths.root + "/.build/deb"
        var newest: (first: String, second: String, mtime: Int)?
        for file in (try? Paths.list(dir)) ?? [] where file.hasSuffix("-2_amd64.deb") {
            let first = String(file.dropLast("-2_amd64.deb".count)) + "-1_amd64.deb"
            var st = stat()
            guard FileIO.exists(dir + "/" + first), stat(dir + "/" + file, &st) == 0 else { continue }
            if newest == nil || st.st_mtim.tv_sec > newest!.mtime {
                newest = (dir + "/" + first, dir + "/" + file, st.st_mtim.tv_sec)
            }
        }
        guard let newest else {
            throw TestFailure(
                "no rollbackd_*-1_amd64.deb and -2_amd64.deb pair in \(dir): `make test` builds them (make deb DEB_REVISION=1 and 2)"
            )
        }
        return (newest.first, newest.second)
    }

    /// The Debian package under a booted systemd: `dpkg -i` starts and enables nothing, creates the user and hands
    /// the config to its group; with the operator's table `rollbackd.service` is READY; `dpkg -i` of a second build
    /// keeps the table and restarts the watchdog; `dpkg --purge` removes program, config and state and keeps the
    /// user (container.sh deb says what it checked).
    @Test(.timeLimit(.minutes(15)))
    func debianPackageInstallsUpgradesAndPurges() async throws {
        let (first, second) = try Self.debianPackages()
        try await Self.withContainer("rbd-deb") { name in
            let said = try await Self.sh(["deb", name, first, second], timeout: .minutes(5))
            #expect(said.hasPrefix("deb: "), "container.sh deb said: \(said)")
        }
    }

    /// The config the daemon scenarios in container.sh run with (and the invalid variant scenario-reload writes)
    /// must be what `rollbackd check` accepts (and rejects), so a scenario fails for the daemon, not its input.
    @Test func scenarioConfigIsValid() async throws {
        let scratch = try ScratchDir("scenario-config")
        defer { scratch.remove() }
        let dir = scratch.path
        for (i, args) in [["scenario-config"], ["scenario-config-kill9"]].enumerated() {
            let config = try await Self.sh(args)
            let path = dir + "/scenario-\(i).json"
            try FileIO.writeAtomically(path: path, bytes: Array(config.utf8), mode: 0o600)
            let r = try await runRollbackd(["check", path])
            #expect(r.succeeded, "rollbackd check \(ProcessRunner.display(args)): \(r.stderrText)")
            // No warning either: a table that cannot verify a rollback would fail the scenarios for its own sake.
            #expect(
                !r.stderrText.contains("warning:"), "rollbackd check \(ProcessRunner.display(args)): \(r.stderrText)")
            let invalid = dir + "/scenario-\(i)-invalid.json"
            try FileIO.writeAtomically(
                path: invalid,
                bytes: Array(config.replacing("\"automation\": \"full\"", with: "\"automation\": \"fulll\"").utf8),
                mode: 0o600)
            let bad = try await runRollbackd(["check", invalid])
            #expect(bad.termination == .exited(1) && bad.stderrText.contains("fulll"))
        }
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        var s = self
        while s.hasSuffix(suffix) { s.removeLast(suffix.count) }
        return s
    }
}
