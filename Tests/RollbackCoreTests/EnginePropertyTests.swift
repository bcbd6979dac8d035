import Testing
import PropertyBased
import Synchronization
@testable import RollbackCore

/// Properties that must hold for any sequence of samples, deploys and executor outcomes.
@Suite @MainActor struct EnginePropertyTests {
    /// Step codes: 0-2 breach, 3-4 ok, 5 no-data, 6 deploy a new version, 7 rollback succeeded, 8 rollback failed,
    /// 9 an hour passes in silence, 10 rearm.
    static let steps = Gen.int(in: 0...10).array(of: 20...400)

    @Test func theBudgetHoldsForAnySequence() async {
        let ordered = Mutex(0)
        await propertyCheck(count: 120, input: Self.steps) { steps in
            var spec = TableSpec()
            spec.safety =
                #"{"cooldown": "0s", "budget": {"max": 2, "window": "30m"}, "deployWindow": "1h", "soak": "5s", "verifyFor": "3s", "baselineWindow": "1m"}"#
            var h = try Harness(spec)
            var next = 2
            for step in steps {
                switch step {
                case 0...2: h.tick(errors: 0.5)
                case 3...4: h.tick(errors: 0.0)
                case 5: h.tick(errors: nil)
                case 6:
                    h.version = "v\(next)"
                    next += 1
                    h.tick(errors: 0.0)
                case 7, 8:
                    if let active = h.state.activeRollback {
                        h.events += h.engine.rollbackFinished(step == 7 ? .succeeded : .failed("boom"), now: h.now)
                        if step == 7 { h.version = active.to }
                    }
                case 9: h.now = h.now + .minutes(60)
                default: _ = try? h.engine.rearm(by: "test", now: h.now)
                }
                // In every window of 30 minutes, at most 2 automatic rollbacks were ordered.
                let times = h.orders.filter(\.automatic).map(\.orderedAt)
                for (i, t) in times.enumerated() {
                    let inWindow = times[i...].filter { $0 - t < .minutes(30) }.count
                    #expect(inWindow <= 2)
                }
                // Never a rollback to a release already rolled back from, or to the release being left.
                for o in h.orders {
                    #expect(o.to != o.from)
                }
            }
            ordered.withLock { $0 += h.orders.count }
            // Never back to a release that was successfully rolled back from.
            for (i, o) in h.orders.enumerated() {
                let leftBefore = h.events.filter { $0.kind == .rollbackFinished && $0.at <= o.orderedAt }.compactMap(
                    \.fromVersion)
                #expect(
                    !leftBefore.contains(o.to), "order \(i) rolled back to \(o.to), which was rolled back from before")
            }
        }
        // The property is not vacuous: the sequences did order rollbacks.
        #expect(ordered.withLock { $0 } > 20)
    }

    @Test func fewerThanKConsecutiveBreachesNeverTrip() async {
        // Sequences of breaches and oks where no run of breaches reaches K = 3.
        await propertyCheck(count: 300, input: Gen.int(in: 0...2).array(of: 1...200)) { runs in
            var spec = TableSpec()
            spec.triggers = [TableSpec.trigger(breaches: 3)]
            var h = try Harness(spec)
            for run in runs {
                h.tick(errors: 0.5, count: run)
                h.tick(errors: 0.0)
            }
            #expect(h.count(.triggerFiring) == 0)
            #expect(h.orders.isEmpty)
        }
    }

    @Test func noDataNeverCausesARollbackWithTheDefaultPolicy() async {
        // Step codes: 0 no-data (refused), 1 no-data (timeout), 2 a new release goes live, 3 ten minutes pass.
        await propertyCheck(count: 200, input: Gen.int(in: 0...3).array(of: 1...300)) { steps in
            var h = try Harness()
            h.knownGoodThenDeploy()
            var next = 3
            for s in steps {
                switch s {
                case 0: h.tick(errors: nil)
                case 1: h.tick(["error_rate": .noData(reason: "timeout after 2s")])
                case 2:
                    h.version = "v\(next)"
                    next += 1
                    h.tick(errors: nil)
                default: h.now = h.now + .minutes(10)
                }
            }
            #expect(h.orders.isEmpty)
            #expect(h.count(.triggerFiring) == 0)
            #expect(h.count(.triggerPending) == 0)
        }
    }
}
