import Testing
import RollbackCore
@testable import RollbackSystem

@Suite struct ProcessRunnerTests {
    @Test func capturesOutputAndStatus() async throws {
        let r = try await ProcessRunner.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], timeout: .seconds(60))
        #expect(r.termination == .exited(3))
        #expect(r.stdoutText == "out\n")
        #expect(r.stderrText == "err\n")
        #expect(r.summary(timeout: .seconds(5)) == "exit status 3: err")
    }

    @Test func passesEnvironmentAndStdin() async throws {
        let r = try await ProcessRunner.run(
            ["/bin/sh", "-c", "printf '%s-' \"$ROLLBACKD_TO\"; cat"],
            environment: ["ROLLBACKD_TO": "v1 'quoted'"], stdin: Array("input".utf8),
            timeout: .seconds(60))
        #expect(r.stdoutText == "v1 'quoted'-input")
    }

    @Test func killsTheWholeGroupOnTimeout() async throws {
        let r = try await ProcessRunner.run(["/bin/sh", "-c", "sleep 30 & sleep 30"], timeout: .ms(300))
        #expect(r.termination == .timedOut)
        #expect(r.seconds < 15, "stopped at its 300 ms timeout, not after the 30 s sleeps")
    }

    @Test func namesTheProgramThatCannotStart() async {
        do {
            _ = try await ProcessRunner.run(["/nonexistent/tool", "--flag"], timeout: .seconds(1))
            Issue.record("started a missing program")
        } catch {
            #expect(error.description == "cannot run /nonexistent/tool --flag: No such file or directory")
        }
    }

    @Test func displayQuotesForReading() {
        #expect(ProcessRunner.display(["git", "show", "v1:etc/app conf"]) == "git show 'v1:etc/app conf'")
    }
}
