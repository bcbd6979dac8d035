import Testing
import RollbackCore
import RollbackSystem
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// What `make install` ships besides the binary and the units: the shell completions, installed where each shell
/// looks for them, and answering as each shell would on TAB.
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
}
