#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import RollbackCore
@testable import RollbackSystem
import TestSupport

final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .acquiring) }
    func set() { value.store(true, ordering: .releasing) }
}

final class RunningCount: Sendable {
    let value = Atomic<Int>(0)
}

@Suite struct ExecutorSymlinkTests {
    /// releases/v1, releases/v2 (each with a VERSION file) and current -> releases/v2.
    static func layout(_ dir: ScratchDir, relative: Bool = false) -> SymlinkStrategy {
        for v in ["v1", "v2", "v10"] { dir.write("releases/\(v)/VERSION", v) }
        symlink(relative ? "releases/v2" : dir.sub("releases/v2"), dir.sub("current"))
        return SymlinkStrategy(releasesDir: dir.sub("releases"), currentLink: dir.sub("current"))
    }

    @Test func swapNeverLeavesReadersWithoutCurrent() async throws {
        let dir = try ScratchDir("symlink")
        defer { dir.remove() }
        let exec = SymlinkExecutor(Self.layout(dir), phaseTimeout: .seconds(60))
        let stop = StopFlag()
        let running = RunningCount()
        let readsSoFar = RunningCount()
        let path = dir.sub("current/VERSION")
        // Readers resolve `current` in a tight loop on their own threads: open(2) follows the link each time.
        @Sendable func reader() async -> (reads: Int, misses: Int, seen: Set<String>) {
            await BlockingThread.run {
                running.value.add(1, ordering: .relaxed)
                var reads = 0, misses = 0
                var seen = Set<String>()
                var buf = [UInt8](repeating: 0, count: 16)
                while !stop.isSet {
                    let fd = open(path, O_RDONLY | O_CLOEXEC)
                    if fd < 0 { misses += 1; continue }
                    let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    close(fd)
                    if n <= 0 { misses += 1; continue }
                    reads += 1
                    readsSoFar.value.add(1, ordering: .relaxed)
                    seen.insert(String(decoding: buf[0..<n], as: UTF8.self))
                }
                return (reads, misses, seen)
            }
        }
        async let a = reader()
        async let b = reader()
        // Swap only once both readers run (the machine may be busy), on a thread of its own, at least 200 times and
        // until the readers have read 2000 times meanwhile. Counts, not a duration: each swap fsyncs the directory,
        // and on a loaded runner one fsync can take longer than a second.
        try? await waitUntil("both readers to run", every: .milliseconds(5)) {
            running.value.load(ordering: .relaxed) == 2
        }
        #expect(running.value.load(ordering: .relaxed) == 2, "the readers did not start")
        let (swaps, swapErrors) = await BlockingThread.run { () -> (Int, [String]) in
            var swaps = 0
            var errors: [String] = []
            let readsBefore = readsSoFar.value.load(ordering: .relaxed)
            while swaps < 200 || readsSoFar.value.load(ordering: .relaxed) - readsBefore < 2000 {
                do { try exec.swap(to: swaps % 2 == 0 ? "v1" : "v2") } catch { errors.append("\(error)") }
                swaps += 1
            }
            return (swaps, errors)
        }
        #expect(swapErrors.isEmpty, "\(swapErrors.prefix(3))")
        stop.set()
        let (ra, rb) = await (a, b)
        #expect(ra.misses + rb.misses == 0, "readers missed current \(ra.misses + rb.misses) times")
        #expect(ra.reads + rb.reads > 1000)
        #expect(ra.seen.union(rb.seen) == ["v1", "v2"])
        #expect(swaps >= 200)
        print(
            "symlink swap: \(swaps) swaps, \(ra.reads + rb.reads) reads by 2 readers, \(ra.misses + rb.misses) misses")
    }

    @Test func planSwapsThenReloadsWithTheRollbackEnvironment() async throws {
        let dir = try ScratchDir("symlink")
        defer { dir.remove() }
        var s = Self.layout(dir)
        let reload = dir.script(
            "reload.sh",
            "echo \"$ROLLBACKD_FROM $ROLLBACKD_TO $ROLLBACKD_INCIDENT $(cat \(dir.sub("current/VERSION")))\" >> \(dir.sub("reload.log"))"
        )
        s.reload = [reload]
        let exec = SymlinkExecutor(s, phaseTimeout: .seconds(60))
        #expect(try await exec.currentVersion() == "v2")
        #expect(try await exec.availableVersions() == ["v10", "v2", "v1"])
        try await exec.precheck(target: "v1")
        let plan = exec.plan(from: "v2", to: "v1", incident: "inc-7")
        #expect(plan.phases.map(\.name) == ["swap", "reload"])
        let outcome = try await runPlan(exec, from: "v2", to: "v1", incident: "inc-7", state: dir.sub("state"))
        #expect(outcome.status == .finished, "\(outcome.summary)")
        #expect(Paths.readLink(dir.sub("current")) == dir.sub("releases/v1"))
        #expect(try await exec.currentVersion() == "v1")
        // The reload ran after the swap, with FROM/TO/INCIDENT in its environment.
        #expect(TestFiles.read(dir.sub("reload.log")) == "v2 v1 inc-7 v1\n")
        #expect(!FileIO.exists(dir.sub("current.rollbackd-new")))
    }

    @Test func swapKeepsARelativeLinkRelativeAndIsIdempotent() async throws {
        let dir = try ScratchDir("symlink")
        defer { dir.remove() }
        let exec = SymlinkExecutor(Self.layout(dir, relative: true), phaseTimeout: .seconds(60))
        try exec.swap(to: "v1")
        #expect(Paths.readLink(dir.sub("current")) == "releases/v1")
        var before = stat(), after = stat()
        lstat(dir.sub("current"), &before)
        try exec.swap(to: "v1")
        lstat(dir.sub("current"), &after)
        #expect(before.st_ino == after.st_ino, "a second swap to the same release must not replace the link")
    }

    @Test func precheckNamesWhatIsWrong() async throws {
        let dir = try ScratchDir("symlink")
        defer { dir.remove() }
        let exec = SymlinkExecutor(Self.layout(dir), phaseTimeout: .seconds(60))
        await #expect { try await exec.precheck(target: "v9") } throws: { e in
            "\(e)" == "symlink: \(dir.sub("releases/v9")) is not a directory (no release v9)"
        }
        await #expect { try await exec.precheck(target: "../v1") } throws: { e in
            "\(e)".contains("is not a release name")
        }
        unlink(dir.sub("current"))
        dir.mkdirs("current")
        await #expect { try await exec.precheck(target: "v1") } throws: { e in
            "\(e)".contains("\(dir.sub("current")) exists and is not a symbolic link")
        }
    }
}
