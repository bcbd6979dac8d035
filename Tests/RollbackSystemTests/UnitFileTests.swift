#if canImport(Glibc)
import Glibc
#endif
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

/// The systemd units in `systemd/`, checked by systemd's own tools (`systemd-analyze verify` and
/// `systemd-analyze security --offline=true`), and `make install-files` / `make uninstall` into a DESTDIR.
@Suite struct UnitFileTests {
    static let units = ["rollbackd.service", "rollbackd@.service", "rollbackd-exec.socket", "rollbackd-exec@.service"]
    static let services = ["rollbackd.service", "rollbackd@.service", "rollbackd-exec@.service"]

    static func run(_ argv: [String], timeout: Interval = .seconds(60)) async throws -> ProcessResult {
        try await ProcessRunner.run(argv, timeout: timeout)
    }

    /// `systemd-analyze verify` checks that ExecStart= names an executable, so the copies it checks point at the
    /// binary this build made. Everything else is the file as shipped. Verify prints warnings (an unknown key, a
    /// bad value) but still exits 0 for many of them: the output must be empty, not just the status zero.
    @Test func verifyIsClean() async throws {
        let binary = RepoPaths.binary
        guard access(binary, X_OK) == 0 else {
            Issue.record("no rollbackd binary at \(binary): run `swift build` first")
            return
        }
        let dirDir = try ScratchDir("units")
        defer { dirDir.remove() }
        let dir = dirDir.path
        for unit in Self.units {
            let text = try TestFiles.text(RepoPaths.root + "/systemd/" + unit)
            if unit.hasSuffix(".service") {
                #expect(text.contains("/usr/local/bin/rollbackd"), "\(unit) does not run /usr/local/bin/rollbackd")
            }
            try FileIO.writeAtomically(
                path: dir + "/" + unit,
                bytes: Array(text.replacing("/usr/local/bin/rollbackd", with: binary).utf8),
                mode: 0o644)
        }
        // Templates are verified through an instance, as systemd would load them.
        let names = [
            "rollbackd.service", "rollbackd@example-api.service", "rollbackd-exec.socket",
            "rollbackd-exec@0-1-2.service",
        ]
        let r = try await Self.run(["systemd-analyze", "verify", "--man=no"] + names.map { dir + "/" + $0 })
        #expect(r.termination == .exited(0), "systemd-analyze verify: \(r.summary(timeout: .seconds(60)))")
        #expect(
            r.stdoutText.isEmpty && r.stderrText.isEmpty,
            "systemd-analyze verify printed:\n\(r.stdoutText)\(r.stderrText)")
    }

    /// The score `systemd-analyze security` gives a unit file (0 = locked down … 10 = fully exposed).
    static func exposure(_ unit: String) async throws -> Double {
        let path = RepoPaths.root + "/systemd/" + unit
        let r = try await run(["systemd-analyze", "security", "--offline=true", "--no-pager", path])
        // → Overall exposure level for rollbackd.service: 1.2 OK 🙂
        let line = r.stdoutText.split(separator: "\n").first { $0.contains("Overall exposure level for") }
        guard let line, let colon = line.lastIndex(of: ":") else {
            throw TestFailure(
                "systemd-analyze security \(unit): no 'Overall exposure level' line "
                    + "(\(r.summary(timeout: .seconds(60))))\n\(r.stdoutText)")
        }
        let number = line[line.index(after: colon)...].split(separator: " ").first.map(String.init) ?? ""
        guard let score = Double(number) else {
            throw TestFailure("systemd-analyze security \(unit): cannot read a score in '\(line)'")
        }
        return score
    }

    @Test(arguments: services)
    func exposureIsAtMostTwo(unit: String) async throws {
        let score = try await Self.exposure(unit)
        #expect(score <= 2.0, "\(unit): exposure \(score) > 2.0")
    }

    /// rollbackd@.service must differ from rollbackd.service only where the instance matters; a hardening line
    /// added to one and forgotten in the other fails here.
    @Test func templateHasTheSameHardening() throws {
        func settings(_ unit: String) throws -> [String] {
            try TestFiles.text(RepoPaths.root + "/systemd/" + unit).split(separator: "\n").map(String.init).filter {
                line in
                !line.isEmpty && !line.hasPrefix("#")
                    && !["Description=", "ExecStart=", "StateDirectory=", "RuntimeDirectory="].contains {
                        line.hasPrefix($0)
                    }
            }
        }
        let main = try settings("rollbackd.service"), instance = try settings("rollbackd@.service")
        #expect(
            main == instance,
            """
            settings only in rollbackd.service: \(main.filter { !instance.contains($0) })
            settings only in rollbackd@.service: \(instance.filter { !main.contains($0) })
            """)
        let template = try TestFiles.text(RepoPaths.root + "/systemd/rollbackd@.service")
        #expect(
            template.contains(
                "ExecStart=/usr/local/bin/rollbackd run --config /etc/rollbackd/%i.json --state-dir /var/lib/rollbackd/%i --exec-socket /run/rollbackd-exec.sock --instance %i"
            ))
        #expect(template.contains("StateDirectory=rollbackd/%i"))
    }

    /// The settings the design asks for, by name: a typo (`WatchdogSecs=`) would only be a verify warning.
    @Test func daemonUnitHasTheRequiredSettings() throws {
        let text = try TestFiles.text(RepoPaths.root + "/systemd/rollbackd.service")
        let lines = Set(text.split(separator: "\n").map(String.init))
        for required in [
            "Type=notify", "NotifyAccess=main", "WatchdogSec=30s",
            "ExecStart=/usr/local/bin/rollbackd run --config /etc/rollbackd/thresholds.json --exec-socket /run/rollbackd-exec.sock",
            "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "User=rollbackd",
            "Group=rollbackd", "StateDirectory=rollbackd", "RuntimeDirectory=rollbackd",
            "RuntimeDirectoryMode=0750", "ConfigurationDirectory=rollbackd", "UMask=0077",
            "NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=",
            "SystemCallFilter=@system-service",
        ] {
            let present = lines.contains(required)
            #expect(present, "rollbackd.service lacks \(required)")
        }
        let socket = Set(
            try TestFiles.text(RepoPaths.root + "/systemd/rollbackd-exec.socket").split(separator: "\n").map(
                String.init))
        for required in [
            "ListenStream=/run/rollbackd-exec.sock", "SocketUser=root", "SocketGroup=rollbackd",
            "SocketMode=0660", "Accept=yes",
        ] {
            let present = socket.contains(required)
            #expect(present, "rollbackd-exec.socket lacks \(required)")
        }
    }

    @Test func sysusersCreatesTheUserAndGroup() async throws {
        let dirDir = try ScratchDir("units")
        defer { dirDir.remove() }
        let dir = dirDir.path
        try FileIO.makeDirectories(dir + "/etc", mode: 0o755)
        let r = try await Self.run([
            "systemd-sysusers", "--root=" + dir, RepoPaths.root + "/systemd/rollbackd.sysusers",
        ])
        #expect(r.termination == .exited(0), "systemd-sysusers: \(r.summary(timeout: .seconds(60)))")
        let passwd = try TestFiles.text(dir + "/etc/passwd")
        let group = try TestFiles.text(dir + "/etc/group")
        let user = passwd.split(separator: "\n").first { $0.hasPrefix("rollbackd:") }.map(String.init) ?? ""
        #expect(user.hasSuffix(":/var/lib/rollbackd:/usr/sbin/nologin"), "passwd line: \(user)")
        let uid = user.split(separator: ":", omittingEmptySubsequences: false).dropFirst(2).first.flatMap { Int($0) }
        #expect(uid.map { $0 > 0 && $0 < 1000 } == true, "rollbackd is not a system user: \(user)")
        #expect(group.split(separator: "\n").contains { $0.hasPrefix("rollbackd:") })
    }

    static func mode(_ path: String) -> (mode: UInt32, isLink: Bool)? {
        var st = stat()
        guard lstat(path, &st) == 0 else { return nil }
        return (UInt32(st.st_mode) & 0o7777, (UInt32(st.st_mode) & UInt32(S_IFMT)) == UInt32(S_IFLNK))
    }

    /// `make install-files` into a DESTDIR: every file where it belongs with its mode, ExecStart following PREFIX,
    /// an existing config never overwritten; `make uninstall` removes ours and keeps the config.
    @Test func installHonoursDestdirAndKeepsTheConfig() async throws {
        let binary = RepoPaths.binary
        guard access(binary, X_OK) == 0 else {
            Issue.record("no rollbackd binary at \(binary): run `swift build` first")
            return
        }
        let destDir = try ScratchDir("units")
        defer { destDir.remove() }
        let dest = destDir.path
        let make = ["make", "-s", "-C", RepoPaths.root, "--no-print-directory"]
        let install = make + ["install-files", "DESTDIR=" + dest, "INSTALL_BIN=" + binary]
        var r = try await Self.run(install)
        #expect(r.succeeded, "make install-files: \(r.summary(timeout: .seconds(60)))\n\(r.stderrText)")
        let expected: [(String, UInt32)] = [
            ("/usr/local/bin/rollbackd", 0o755),
            ("/usr/local/lib/systemd/system/rollbackd.service", 0o644),
            ("/usr/local/lib/systemd/system/rollbackd@.service", 0o644),
            ("/usr/local/lib/systemd/system/rollbackd-exec.socket", 0o644),
            ("/usr/local/lib/systemd/system/rollbackd-exec@.service", 0o644),
            ("/usr/local/lib/sysusers.d/rollbackd.conf", 0o644),
            ("/usr/local/share/bash-completion/completions/rollbackd", 0o644),
            ("/usr/local/share/zsh/site-functions/_rollbackd", 0o644),
            ("/usr/local/share/fish/vendor_completions.d/rollbackd.fish", 0o644),
            ("/usr/local/share/man/man8/rollbackd.8", 0o644),
            ("/usr/local/share/man/man5/thresholds.json.5", 0o644),
            ("/etc/rollbackd/thresholds.json", 0o640),
        ]
        for (path, mode) in expected {
            let m = Self.mode(dest + path)
            #expect(
                m?.mode == mode,
                "\(path): mode \(m.map { String($0.mode, radix: 8) } ?? "missing"), expected \(String(mode, radix: 8))")
        }

        // An operator's config survives a second install.
        let mine = Array("{\"mine\": true}\n".utf8)
        try FileIO.writeAtomically(path: dest + "/etc/rollbackd/thresholds.json", bytes: mine, mode: 0o640)
        r = try await Self.run(install)
        #expect(r.succeeded)
        #expect(r.stdoutText.contains("kept the existing"), "install output: \(r.stdoutText)")
        #expect(try FileIO.readAll(path: dest + "/etc/rollbackd/thresholds.json", limit: 4096) == mine)

        r = try await Self.run(make + ["uninstall", "DESTDIR=" + dest])
        #expect(r.succeeded, "make uninstall: \(r.summary(timeout: .seconds(60)))")
        for (path, _) in expected where path != "/etc/rollbackd/thresholds.json" {
            #expect(Self.mode(dest + path) == nil, "\(path) is still there after uninstall")
        }
        #expect(try FileIO.readAll(path: dest + "/etc/rollbackd/thresholds.json", limit: 4096) == mine)

        // Another PREFIX: the binary moves, ExecStart follows, and the units go where systemd looks (/etc).
        let dest2Dir = try ScratchDir("units")
        defer { dest2Dir.remove() }
        let dest2 = dest2Dir.path
        r = try await Self.run(
            make + ["install-files", "DESTDIR=" + dest2, "INSTALL_BIN=" + binary, "PREFIX=/opt/rollbackd"])
        #expect(r.succeeded, "make install-files PREFIX=/opt/rollbackd: \(r.stderrText)")
        let unit = try TestFiles.text(dest2 + "/etc/systemd/system/rollbackd.service")
        #expect(unit.contains("ExecStart=/opt/rollbackd/bin/rollbackd run --config /etc/rollbackd/thresholds.json"))
        #expect(!unit.contains("/usr/local/"), "a /usr/local path is left in the unit")
        #expect(Self.mode(dest2 + "/opt/rollbackd/bin/rollbackd")?.mode == 0o755)
    }
}
