import Synchronization
import TestSupport
import Testing
import RollbackCore
@testable import RollbackSystem
@testable import RollbackService

/// The daemon through its seam: a `DaemonWorld` held in memory (scripted samples and live version, a recording
/// executor and notifier) and a fake wall clock, ticked by the test. A whole incident — known-good, a bad deploy,
/// detection, one rollback, verification — runs in milliseconds with no server and no sleep.
@Suite struct DaemonWorldTests {
    /// The world the daemon sees and acts on, scripted by the test.
    final class Script: Sendable {
        struct Scene {
            var live = "v1"
            var errorRatio = 0.01
            var now = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)
            var orders: [RollbackOrder] = []
            var events: [Event] = []
            var incidentsWritten: [String] = []
        }
        let scene = Mutex(Scene())

        var clock: FakeClock { FakeClock(script: self) }

        func world() -> DaemonWorld {
            DaemonWorld(
                sample: { _ in ["error_rate": .value(self.scene.withLock { $0.errorRatio })] },
                readVersion: { (self.scene.withLock { $0.live }, nil) },
                deployable: { ["v1", "v2"] },
                notify: { event in self.scene.withLock { $0.events.append(event) } },
                executeRollback: { order, phase in
                    // The executor: one phase, then the target is live.
                    await phase("swap", .started, "point current at \(order.to)")
                    self.scene.withLock {
                        $0.orders.append(order)
                        $0.live = order.to
                    }
                    await phase("swap", .completed, "done")
                    return .succeeded
                },
                smoke: { _ in [] },
                incidentChanged: { incident in self.scene.withLock { $0.incidentsWritten.append(incident.id) } })
        }

        func kinds() -> [EventKind] { scene.withLock { $0.events.map(\.kind) } }
    }

    struct FakeClock: WallClock {
        let script: Script
        func now() -> Timestamp { script.scene.withLock { $0.now } }
    }

    static let config = """
        {"service": "svc", "interval": "1s",
         "metrics": {"error_rate": {"type": "command", "argv": ["/bin/false"], "value": "stdout"}},
         "triggers": [{"name": "errors", "metric": "error_rate", "condition": {"above": 0.1}, "breaches": 3, "clears": 2,
                       "severity": "critical", "respondWithin": "2m", "automation": "full"}],
         "rollback": {"strategy": "command", "command": {"argv": ["/bin/false"]}},
         "safety": {"cooldown": "0s", "soak": "5s", "verifyFor": "4s", "deployWindow": "10m", "baselineWindow": "1m"}}
        """

    @Test func aWholeIncidentThroughAnInMemoryWorld() async throws {
        let dir = try ScratchDir("daemon-world")
        defer { dir.remove() }
        dir.write("thresholds.json", Self.config, mode: 0o600)
        let script = Script()
        let daemon = try Daemon(
            options: DaemonOptions(
                configPath: dir.sub("thresholds.json"), stateDirectory: dir.sub("state"),
                clock: script.clock),
            makeWorld: { _, _ in script.world() })
        func tick(_ n: Int = 1) async {
            for _ in 0..<n {
                await daemon.tickOnce()
                await daemon.rollbackSettled()
                script.scene.withLock { $0.now = $0.now + .seconds(1) }
            }
        }

        // v1 serves cleanly through its soak and becomes known-good.
        await tick(8)
        #expect(await daemon.snapshot().state.ledger.release("v1")?.isKnownGood == true)

        // v2 goes live and fails: three breaches fire the full trigger, and exactly one rollback to v1 runs.
        script.scene.withLock {
            $0.live = "v2"
            $0.errorRatio = 0.5
        }
        await tick(2)
        #expect(script.scene.withLock { $0.orders.isEmpty }, "two breaches must not roll back")
        await tick(1)
        let orders = script.scene.withLock { $0.orders }
        #expect(orders.count == 1)
        #expect(orders.first?.from == "v2" && orders.first?.to == "v1" && orders.first?.automatic == true)
        #expect(orders.first?.trigger == "errors")

        // v1 is live again and healthy: verification passes and the incident closes; nothing rolls back twice.
        script.scene.withLock { $0.errorRatio = 0.01 }
        await tick(8)
        let state = await daemon.snapshot().state
        #expect(script.scene.withLock { $0.orders.count } == 1)
        #expect(state.activeRollback == nil && state.verification == nil && state.halted == nil)
        #expect(state.ledger.release("v2")?.rolledBackFromAt != nil)
        let kinds = script.kinds()
        for kind in [
            EventKind.triggerFiring, .decision, .rollbackStarted, .rollbackPhase, .rollbackFinished,
            .verificationPassed, .incidentClosed,
        ] {
            #expect(kinds.contains(kind), "no \(kind.rawValue) in \(kinds.map(\.rawValue))")
        }
        #expect(!kinds.contains(.rollbackFailed) && !kinds.contains(.verificationFailed))
        let firing = try #require(kinds.firstIndex(of: .triggerFiring))
        let passed = try #require(kinds.firstIndex(of: .verificationPassed))
        #expect(firing < passed)
        // Every event is stamped by the fake clock, and the incident's report was refreshed by the world.
        let times = script.scene.withLock { $0.events.map(\.at.millisecondsSinceEpoch) }
        #expect(times.allSatisfy { $0 >= 1_800_000_000_000 && $0 < 1_800_000_000_000 + 60_000 })
        #expect(!script.scene.withLock { $0.incidentsWritten }.isEmpty)

        // What the daemon saved is what a restart would resume from.
        let saved = try #require(try StateStore(directory: dir.sub("state")).load())
        #expect(saved.ledger.release("v2")?.rolledBackFromAt != nil)
        #expect(saved.incidents.count == 1)
    }

    /// The samples behind the incident charts are kept in `samples.json` (at most every 30 s, and on stop), so a
    /// chart drawn after a restart still has the line from before it.
    @Test func theChartSamplesSurviveARestart() async throws {
        let dir = try ScratchDir("daemon-world-samples")
        defer { dir.remove() }
        dir.write("thresholds.json", Self.config, mode: 0o600)
        let script = Script()
        func daemon() throws -> Daemon {
            try Daemon(
                options: DaemonOptions(
                    configPath: dir.sub("thresholds.json"), stateDirectory: dir.sub("state"), clock: script.clock),
                makeWorld: { _, _ in script.world() })
        }
        let first = try daemon()
        for i in 0..<40 {
            script.scene.withLock { $0.errorRatio = Double(i) / 1000 }
            await first.tickOnce()
            script.scene.withLock { $0.now = $0.now + .seconds(1) }
        }
        // Saved at the first tick and 30 s later: 31 points on disk, though the daemon holds 40.
        let saved = try #require(try StateStore(directory: dir.sub("state")).loadSamples().get())
        let start = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)
        #expect(saved.points(of: "error_rate", from: start, to: start + .seconds(60)).count == 31)
        // A new daemon on the same state directory starts from them.
        let second = try daemon()
        let points = await second.chartSamples.points(of: "error_rate", from: start, to: start + .seconds(60))
        #expect(points.count == 31)
        #expect(points.first?.at == start && points.first?.value == 0)
        #expect(points.last?.value == 0.03)
    }
}
