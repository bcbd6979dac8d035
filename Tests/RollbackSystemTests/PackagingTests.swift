import Testing
import RollbackCore
import RollbackSystem
import RollbackVersion
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What `make install` ships besides the binary and the units: the shell completions, installed where each shell
/// looks for them and answering as each shell would on TAB, and the man pages, complete and rendered without a
/// warning.
@Suite(.serialized) struct PackagingTests {
    /// `make install-files` of the built binary into a fresh DESTDIR (PREFIX /usr/local), or the failure.
    static func installed() async throws -> ScratchDir {
        let dest = try ScratchDir("pkg")
        let argv = [
            "make", "-s", "-C", RepoPaths.root, "--no-print-directory", "install-files", "DESTDIR=" + dest.path,
            "INSTALL_BIN=" + RepoPaths.binary,
        ]
        let r = try await ProcessRunner.run(argv, timeout: .seconds(120))
        guard r.succeeded else {
            throw TestFailure("make install-files: \(r.summary(timeout: .seconds(120)))\n\(r.stderrText)")
        }
        return dest
    }

    static func shell(_ argv: [String]) async throws -> ProcessResult {
        try await ProcessRunner.run(argv, environment: ["HOME": "/nonexistent"], timeout: .seconds(60))
    }

    @Test func completionsAnswerLikeEachShellOnTab() async throws {
        let dest = try await Self.installed()
        defer { dest.remove() }
        let bashFile = dest.path + "/usr/local/share/bash-completion/completions/rollbackd"
        let zshDir = dest.path + "/usr/local/share/zsh/site-functions"
        let fishFile = dest.path + "/usr/local/share/fish/vendor_completions.d/rollbackd.fish"
        for path in [bashFile, zshDir + "/_rollbackd", fishFile] {
            #expect(UnitFileTests.mode(path)?.mode == 0o644, "\(path) is missing or not 0644")
        }

        // bash: what TAB does, calling the function the installed file registered with `complete` for the words
        // `rollbackd ap`.
        let bashScript = #"""
            source "$1" || exit 3
            fn=$(complete -p rollbackd | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
            [ -n "$fn" ] || { echo "no complete -F for rollbackd"; exit 4; }
            COMP_LINE="rollbackd $2"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(rollbackd "$2"); COMP_CWORD=1
            "$fn" rollbackd "$2" rollbackd
            printf '%s\n' "${COMPREPLY[@]}"
            """#
        let bash = try await Self.shell(["bash", "--norc", "--noprofile", "-c", bashScript, "bash", bashFile, "ap"])
        #expect(bash.succeeded && bash.stdoutText == "approve\n", "\(bash.stdoutText) \(bash.stderrText)")
        let re = try await Self.shell(["bash", "--norc", "--noprofile", "-c", bashScript, "bash", bashFile, "re"])
        #expect(re.stdoutText.split(separator: "\n").sorted() == ["rearm", "resume"], "\(re.stdoutText)")

        // fish: its own `complete -C`, which is what TAB shows, with descriptions.
        let fish = try await Self.shell([
            "fish", "--no-config", "-c",
            "source $argv[1]; complete -C 'rollbackd ap'; complete -C 'rollbackd check --j'",
            fishFile,
        ])
        #expect(
            fish.stdoutText.hasPrefix("approve\tApprove the prepared rollback")
                && fish.stdoutText.contains("--json\t"), "\(fish.stdoutText) \(fish.stderrText)")

        // zsh: compinit finds the installed file on fpath and binds it to rollbackd (driving zsh's completion
        // widget needs a terminal; the function's syntax is checked with zsh -n).
        let zsh = try await Self.shell([
            "zsh", "-f", "-c",
            "fpath=($1 $fpath); autoload -Uz compinit && compinit -u -d $2 && print -r -- $_comps[rollbackd]",
            "zsh", zshDir, dest.path + "/zcompdump",
        ])
        #expect(zsh.stdoutText == "_rollbackd\n", "\(zsh.stdoutText) \(zsh.stderrText)")
        let syntax = try await Self.shell(["zsh", "-n", zshDir + "/_rollbackd"])
        #expect(syntax.succeeded, "\(syntax.stderrText)")
    }

    /// groff's and man's warnings for a page: empty when it renders cleanly.
    static func renderWarnings(_ page: String) async throws -> String {
        let groff = try await Self.shell(["groff", "-ww", "-mandoc", "-Tutf8", "-z", page])
        let man = try await ProcessRunner.run(
            ["man", "--warnings", "-l", page], environment: ["MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"],
            timeout: .seconds(60))
        var problems = ""
        if !groff.succeeded || !groff.stderrText.isEmpty { problems += "groff -ww: \(groff.stderrText)" }
        if !man.succeeded || !man.stderrText.isEmpty { problems += "man --warnings: \(man.stderrText)" }
        if man.stdoutText.count < 1000 { problems += "man rendered only: \(man.stdoutText)" }
        return problems
    }

    /// Words set in `Ic` (a key) in an mdoc page: what follows the macro on its line, up to the next macro.
    static func icWords(_ page: String) -> Set<String> {
        var words: Set<String> = []
        for line in page.split(separator: "\n") where line.hasPrefix(".") {
            let tokens = line.split(separator: " ").map(String.init)
            var inIc = false
            for t in tokens {
                if t == "Ic" || t == ".Ic" {
                    inIc = true
                } else if t.first?.isUppercase == true && t.count == 2 && t.dropFirst().first?.isLowercase == true {
                    inIc = false // another macro (Pq, Ns, Cm, ...)
                } else if inIc && ![",", ".", ";", ":", "(", ")"].contains(t) {
                    words.insert(t)
                }
            }
        }
        return words
    }

    /// Every property name anywhere in thresholds.schema.json.
    static func schemaKeys() throws -> Set<String> {
        var keys: Set<String> = []
        func walk(_ v: JSONValue) {
            switch v {
            case let .object(members):
                for (k, child) in members {
                    if k == "properties", case let .object(props) = child { keys.formUnion(props.map(\.key)) }
                    walk(child)
                }
            case let .array(items): items.forEach(walk)
            default: break
            }
        }
        walk(try JSONParser.parse(bytes: FileIO.readAll(path: RepoPaths.root + "/thresholds.schema.json")))
        return keys
    }

    @Test func manPagesCoverEveryCommandAndKeyAndRenderCleanly() async throws {
        let dest = try await Self.installed()
        defer { dest.remove() }
        let man8 = dest.path + "/usr/local/share/man/man8/rollbackd.8"
        let man5 = dest.path + "/usr/local/share/man/man5/thresholds.json.5"
        for page in [man8, man5] {
            let problems = try await Self.renderWarnings(page)
            #expect(problems.isEmpty, "\(page): \(problems)")
        }

        // rollbackd(8): exactly the subcommands `rollbackd --help` shows (from the binary's own description of
        // itself), the version, and the hand-written sections.
        let page8 = try TestFiles.text(man8)
        let dump = try JSONParser.parse(try await runRollbackd(["--experimental-dump-help"]).stdoutText)
        guard case let .array(subcommands)? = dump["command"]?["subcommands"] else {
            throw TestFailure("--experimental-dump-help has no subcommands: \(dump)")
        }
        // A command's own subcommands (`fleet status`) follow it on the page, in its nested list.
        var shown: [String] = []
        var hidden: [String] = []
        func walk(_ commands: [JSONValue]) {
            for c in commands {
                guard case let .string(name)? = c["commandName"], name != "help" else { continue }
                if c["shouldDisplay"] == .bool(false) { hidden.append(name); continue }
                shown.append(name)
                if case let .array(nested)? = c["subcommands"] { walk(nested) }
            }
        }
        walk(subcommands)
        #expect(shown.count >= 16 && hidden.contains("notify-drill"), "\(shown) \(hidden)")
        let documented = page8.split(separator: "\n").filter { $0.hasPrefix(".It Em ") }.map { String($0.dropFirst(7)) }
        #expect(documented == shown)
        #expect(page8.contains("\n.Os rollbackd \(RollbackVersion.current)\n"))
        for section in ["ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"] {
            #expect(page8.contains("\n.Sh \(section)\n"), "rollbackd.8 has no \(section)")
        }
        // Every option of `run` (the daemon) is there, from the binary.
        for option in ["--config", "--state-dir", "--socket", "--log-target", "--exec-socket", "--instance"] {
            #expect(page8.contains(".It Fl \(option.dropFirst()) Ar"), "rollbackd.8 lacks \(option)")
        }

        // thresholds.json(5): every key of the schema is described (set in Ic).
        let page5 = try TestFiles.text(man5)
        let missing = try Self.schemaKeys().subtracting(Self.icWords(page5)).sorted()
        #expect(missing.isEmpty, "thresholds.json.5 does not describe: \(missing.joined(separator: ", "))")
        for placeholder in ["@DATE@", "@VERSION@", "@DOCDIR@"] {
            #expect(!page5.contains(placeholder) && !page8.contains(placeholder), "\(placeholder) is left")
        }
    }
}
