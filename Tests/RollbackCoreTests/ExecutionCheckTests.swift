import Testing
@testable import RollbackCore

/// The privileged executor's own decision: it executes only the order the engine decided and saved, for the
/// release that is live now, under the gates as they stand now; and an interrupted rollback stays the order.
@Suite struct ExecutionCheckTests {
    /// A harness whose engine has just ordered v2 -> v1 (v1 known-good), and the order.
    static func ordered() throws -> (Harness, RollbackOrder) {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        let order = try #require(h.orders.last)
        #expect(order.from == "v2" && order.to == "v1")
        return (h, order)
    }

    static func check(
        _ h: Harness, _ request: ExecutionCheck.Request, live: String?, journaled: Bool = false,
        config: Thresholds? = nil
    ) -> ExecutionCheck.Verdict {
        ExecutionCheck.check(
            request, config: config ?? h.engine.config, state: h.state, live: live,
            liveReason: live == nil ? "readlink: no such file" : nil, journaled: journaled, now: h.now)
    }

    static func refusedGate(_ v: ExecutionCheck.Verdict) -> String? {
        if case let .refuse(g) = v { return g.gate }
        return nil
    }

    @Test func theSavedOrderForTheLiveReleaseExecutesWithEveryGateNamed() throws {
        let (h, order) = try Self.ordered()
        let v = Self.check(h, .init(incident: order.incident, to: "v1"), live: "v2")
        guard case let .execute(o, gates) = v else { Issue.record("refused: \(v)"); return }
        #expect(o == order)
        #expect(gates.map(\.gate) == ["order", "incident", "live", "armed", "automation", "target", "budget"])
    }

    @Test func anythingTheEngineDidNotOrderIsRefused() throws {
        let (h, order) = try Self.ordered()
        #expect(Self.refusedGate(Self.check(h, .init(incident: "INC-other", to: "v1"), live: "v2")) == "order")
        #expect(Self.refusedGate(Self.check(h, .init(incident: order.incident, to: "v0"), live: "v2")) == "order")
        // Nothing ordered at all.
        var idle = try Harness()
        idle.tick(errors: 0.0, count: 2)
        #expect(Self.refusedGate(Self.check(idle, .init(incident: order.incident, to: "v1"), live: "v1")) == "order")
    }

    @Test func aDeploymentThatChangedSinceTheDecisionIsRefused() throws {
        let (h, order) = try Self.ordered()
        let request = ExecutionCheck.Request(incident: order.incident, to: "v1")
        #expect(Self.refusedGate(Self.check(h, request, live: "v3")) == "live")
        #expect(Self.refusedGate(Self.check(h, request, live: nil)) == "live")
        // The target already live but not in the executor's journal: someone else did it; do not claim it.
        #expect(Self.refusedGate(Self.check(h, request, live: "v1")) == "live")
    }

    @Test func aJournaledRollbackIsResumedWithoutPolicyGates() throws {
        var (h, order) = try Self.ordered()
        // Even if the operator capped automation meanwhile: half a rollback is worse than a finished one.
        var spec = TableSpec()
        spec.cap = "manual"
        let capped = try spec.thresholds()
        h.engine.reconfigure(capped)
        let v = Self.check(h, .init(incident: order.incident, to: "v1"), live: "v1", journaled: true, config: capped)
        guard case let .execute(_, gates) = v else { Issue.record("refused: \(v)"); return }
        #expect(gates.map(\.gate) == ["order", "incident", "live", "resume"])
        // Not journaled: the cap refuses it.
        #expect(
            Self.refusedGate(Self.check(h, .init(incident: order.incident, to: "v1"), live: "v2", config: capped))
                == "automation")
        _ = order
    }

    @Test func aTriggerNoLongerFullOrARemovedTriggerIsRefused() throws {
        let (h, order) = try Self.ordered()
        var semi = TableSpec()
        semi.triggers = [TableSpec.trigger(automation: "semi")]
        #expect(
            Self.refusedGate(
                Self.check(
                    h, .init(incident: order.incident, to: "v1"), live: "v2",
                    config: try semi.thresholds())) == "automation")
        var renamed = TableSpec()
        renamed.triggers = [TableSpec.trigger(name: "other")]
        #expect(
            Self.refusedGate(
                Self.check(
                    h, .init(incident: order.incident, to: "v1"), live: "v2",
                    config: try renamed.thresholds())) == "automation")
    }

    @Test func anInterruptedRollbackStaysTheOrderAndNeitherFailsNorHalts() throws {
        var (h, order) = try Self.ordered()
        h.events += h.engine.rollbackFinished(.interrupted("stopped during phase reload"), now: h.now)
        #expect(h.state.activeRollback == order)
        #expect(h.state.halted == nil)
        #expect(h.count(.rollbackFailed) == 0)
        #expect(h.state.incidents.first?.timeline.last?.text.contains("interrupted") == true)
        // The resumed run finishes it; verification follows as usual.
        h.finishRollback(.succeeded)
        #expect(h.state.activeRollback == nil)
        #expect(h.count(.verificationPassed) == 1)
        #expect(h.orders.count == 1)
    }

    /// Fleet mode: a host that returns on the release the fleet rolled back from carries out the standing decision,
    /// although the fleet's incident is closed; on any other release it refuses.
    @Test func aStandingFleetDecisionConvergesAReturningHostOnly() throws {
        var (h, order) = try Self.ordered()
        h.finishRollback()
        #expect(h.state.incident(order.incident)?.status == .closed)
        var standing = order
        standing.standing = true
        var state = h.state
        state.activeRollback = standing
        func check(live: String) -> ExecutionCheck.Verdict {
            ExecutionCheck.check(
                .init(incident: order.incident, to: "v1"), config: h.engine.config, state: state, live: live,
                journaled: false, now: h.now)
        }
        guard case let .execute(o, gates) = check(live: "v2") else { Issue.record("refused"); return }
        #expect(o.standing == true && gates.map(\.gate) == ["order", "fleet"])
        #expect(Self.refusedGate(check(live: "v3")) == "live")
        // Resumed after a crash once its swap was done: the target is live and the run is in the journal.
        let resumed = ExecutionCheck.check(
            .init(incident: order.incident, to: "v1"), config: h.engine.config, state: state, live: "v1",
            journaled: true, now: h.now)
        guard case .execute = resumed else { Issue.record("a journaled standing run must resume"); return }
        #expect(Self.refusedGate(check(live: "v1")) == "live")
        // Without the mark, a closed incident is still refused.
        state.activeRollback = order
        #expect(Self.refusedGate(check(live: "v2")) == "incident")
    }
}
