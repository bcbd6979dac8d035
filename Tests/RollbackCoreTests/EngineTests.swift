import Testing
@testable import RollbackCore

/// The trigger state machine, table-driven: B = breach, O = ok, N = no data. K = 3 breaches, R = 2 clears.
@Suite struct HysteresisTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var noData: String
        var samples: String
        var phases: String // one letter per sample: o k(ok) p(ending) f(iring) r(ecovering)
        var testDescription: String { "\(noData): \(samples)" }
    }

    static let cases: [Case] = [
        Case(noData: "hold", samples: "BBB", phases: "ppf"),
        Case(noData: "hold", samples: "BBOBB", phases: "ppopp"),
        Case(noData: "hold", samples: "BNNBB", phases: "ppppf"),
        Case(noData: "hold", samples: "BBBOO", phases: "ppfro"),
        Case(noData: "hold", samples: "BBBOBO", phases: "ppfrfr"),
        Case(noData: "hold", samples: "BBBONNO", phases: "ppfrrro"),
        Case(noData: "hold", samples: "NNNNNNNN", phases: "oooooooo"),
        Case(noData: "breach", samples: "NNN", phases: "ppf"),
        Case(noData: "breach", samples: "BBBNO", phases: "ppffr"),
        Case(noData: "ok", samples: "BBN", phases: "ppo"),
        Case(noData: "ok", samples: "BBBNN", phases: "ppfro"),
    ]

    @Test(arguments: cases)
    func phases(c: Case) throws {
        var spec = TableSpec()
        spec.triggers = [TableSpec.trigger(breaches: 3, clears: 2, noData: c.noData)]
        var h = try Harness(spec)
        var seen = ""
        for ch in c.samples {
            switch ch {
            case "B": h.tick(errors: 0.5)
            case "O": h.tick(errors: 0.01)
            default: h.tick(errors: nil)
            }
            let phase = h.state.triggers["errors"]?.phase ?? .ok
            seen += String(phase.rawValue.prefix(1))
        }
        #expect(seen == c.phases)
    }

    @Test func kOfOneFiresAtOnceAndROfOneClearsAtOnce() throws {
        var spec = TableSpec()
        spec.triggers = [TableSpec.trigger(breaches: 1, clears: 1)]
        var h = try Harness(spec)
        h.tick(errors: 0.5)
        #expect(h.state.triggers["errors"]?.phase == .firing)
        h.tick(errors: 0.0)
        #expect(h.state.triggers["errors"]?.phase == .ok)
        #expect(h.kinds().filter { $0.rawValue.hasPrefix("trigger_") } == [.triggerFiring, .triggerCleared])
    }

    @Test func eventsCarryValueThresholdAndReason() throws {
        var h = try Harness()
        h.tick(errors: 0.25, count: 3)
        let firing = try #require(h.events.first { $0.kind == .triggerFiring })
        #expect(firing.value == 0.25)
        #expect(firing.threshold == 0.1)
        #expect(firing.trigger == "errors")
        #expect(firing.severity == .critical)
        #expect(firing.message.contains("25%"))
    }
}

@Suite struct RollbackFlowTests {
    @Test func fullTriggerRollsBackVerifiesAndCloses() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        #expect(h.orders.count == 1)
        let order = try #require(h.orders.first)
        #expect(order.from == "v2")
        #expect(order.to == "v1")
        #expect(order.automatic)
        #expect(h.decisions() == ["rollback"])
        #expect(h.state.activeRollback == order)

        h.finishRollback()
        #expect(h.count(.verificationPassed) == 1)
        let incident = try #require(h.state.incident(order.incident))
        #expect(incident.status == .closed)
        #expect(incident.outcome == .rolledBack)
        #expect(incident.toVersion == "v1")
        #expect(incident.rollbackStartedAt != nil && incident.verifiedAt != nil)
        let kinds = incident.timeline.map(\.kind)
        for k: EventKind in [
            .triggerPending, .triggerFiring, .incidentOpened, .rollbackStarted, .rollbackFinished, .verificationPassed,
            .incidentClosed,
        ] {
            #expect(kinds.contains(k), "timeline lacks \(k)")
        }
        #expect(
            incident.gates.map(\.gate) == [
                "automation", "armed", "dry_run", "deploy_window", "target", "cooldown", "budget",
            ])
        #expect(h.state.ledger.release("v2")?.rolledBackFromAt != nil)
        #expect(h.state.ledger.current == "v1")
        #expect(h.orders.count == 1, "no second rollback")
    }

    @Test func stillFiringAfterRollbackFailsVerificationAndHalts() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        h.events += h.engine.rollbackFinished(.succeeded, now: h.now)
        h.version = "v1"
        h.tick(errors: 0.3, count: 7)
        #expect(h.count(.verificationFailed) == 1)
        #expect(h.count(.automationHalted) == 1)
        #expect(h.state.halted != nil)
        #expect(h.orders.count == 1)
        // Still firing from before the rollback: that trip belongs to v2, so no incident against v1 yet.
        h.tick(errors: 0.3, count: 5)
        #expect(h.state.openIncidents.isEmpty)
        // v1 trips on its own (recovering, then firing again): an incident for v1, blocked by the armed gate.
        h.tick(errors: 0.0)
        h.tick(errors: 0.3, count: 2)
        #expect(h.state.openIncidents.first?.fromVersion == "v1")
        #expect(h.orders.count == 1)
        let blocked = h.events.filter { $0.kind == .gateBlocked }.compactMap { $0.extra["gate"] }
        #expect(blocked.contains("armed"))
        _ = try h.engine.rearm(by: "uid 0", now: h.now)
        #expect(h.state.halted == nil)
    }

    /// No data through verification (the service got no traffic after the rollback): recovery could not be shown,
    /// so verification fails and halts, and the reason says the metric was dark, not merely "firing".
    @Test func aDarkMetricDuringVerificationFailsItAndSaysWhy() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        h.finishRollback(.succeeded, healthyTicks: 0)
        h.tick(errors: nil, count: 7)
        let failed = try #require(h.events.first { $0.kind == .verificationFailed })
        #expect(
            failed.reason?.contains("errors is firing and could not show recovery: error_rate has had no data") == true,
            "\(failed.reason ?? "")")
        #expect(failed.reason?.contains("connection refused") == true)
        #expect(h.state.halted != nil)
        #expect(h.orders.count == 1, "no-data never causes a rollback")
    }

    /// A loaded host: the first tick after the rollback takes 4 s, so at the 5 s deadline the triggers have had two
    /// samples, the first still holding the bad release's. The verdict waits for the five samples verifyFor
    /// promises, and the recovery is seen.
    @Test func overrunTicksDoNotCutVerificationShort() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        h.finishRollback(.succeeded, healthyTicks: 0)
        h.now = h.now + .seconds(4)
        h.tick(errors: 0.3) // 4 s late, still the bad window
        h.tick(errors: 0.0) // the deadline: recovering, 1 of 2 oks
        #expect(h.count(.verificationFailed) == 0, "judged on 2 of the 5 promised samples")
        #expect(h.state.verification != nil)
        h.tick(errors: 0.0, count: 3)
        #expect(h.count(.verificationPassed) == 1)
        #expect(h.count(.verificationFailed) == 0)
        #expect(h.state.halted == nil)
    }

    /// A sampler that stays slow still gets a verdict: at twice verifyFor, with what it has.
    @Test func aStalledSamplerGetsItsVerdictAtTwiceVerifyFor() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        h.finishRollback(.succeeded, healthyTicks: 0)
        let finished = h.now
        h.now = h.now + .seconds(6)
        h.tick(errors: 0.0)
        #expect(h.state.verification != nil)
        h.now = h.now + .seconds(4)
        h.tick(errors: 0.0)
        #expect(h.state.verification == nil, "no verdict by \(h.now - finished) after the rollback")
        #expect(h.count(.verificationFailed) + h.count(.verificationPassed) == 1)
    }

    @Test func smokeFailureFailsVerification() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        h.events += h.engine.rollbackFinished(.succeeded, now: h.now)
        h.version = "v1"
        h.tick(["error_rate": .value(0)], smoke: ["http://127.0.0.1:8080/api: status 500"])
        h.tick(errors: 0.0, count: 8)
        #expect(h.count(.verificationFailed) == 1)
        #expect(h.events.first { $0.kind == .verificationFailed }?.reason?.contains("smoke check") == true)
    }

    @Test func failedRollbackHaltsAutomation() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        h.finishRollback(.failed("phase swap: rename /srv/current: permission denied"), healthyTicks: 0)
        #expect(h.count(.rollbackFailed) == 1)
        #expect(h.state.halted?.reason.contains("permission denied") == true)
        let inc = try #require(h.state.incidents.first)
        #expect(inc.outcome == .rollbackFailed)
        h.tick(errors: 0.3, count: 10)
        #expect(h.orders.count == 1)
    }

    @Test func refusedByPrecheckDoesNotSpendBudgetAndDoesNotLoop() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        h.finishRollback(
            .refused(GateResult(gate: "precheck", passed: false, detail: "/srv/releases/v1 does not exist")),
            healthyTicks: 0)
        #expect(h.engine.automaticRollbacks(since: h.now - .hours(1)) == 0)
        h.tick(errors: 0.3, count: 20)
        #expect(h.orders.count == 1, "a refused rollback is not retried every tick")
    }

    @Test func databaseGateDemotesToApproval() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        let id = try #require(h.orders.first?.incident)
        h.finishRollback(.demotedToApproval("v2 has migrations v1 lacks: 0042_add_orders.sql"), healthyTicks: 0)
        #expect(h.state.approvals.map(\.incident) == [id])
        #expect(h.state.incident(id)?.status == .awaitingApproval)
        let out = try h.engine.approve(id, by: "uid 1000", now: h.now)
        #expect(out.rollback?.to == "v1")
        #expect(out.rollback?.automatic == false)
        #expect(h.engine.state.incident(id)?.approver == "uid 1000")
    }

    @Test func manualRollbackGoesThroughTheTargetGate() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.01)
        #expect(throws: EngineRefusal.self) { try h.engine.requestRollback(to: "v9", by: "uid 0", now: h.now) }
        #expect(throws: EngineRefusal.self) { try h.engine.requestRollback(to: "v2", by: "uid 0", now: h.now) }
        let out = try h.engine.requestRollback(to: nil, by: "uid 0", now: h.now)
        #expect(out.rollback?.to == "v1")
        #expect(out.rollback?.requestedBy == "uid 0")
        #expect(throws: EngineRefusal.self) { try h.engine.requestRollback(to: nil, by: "uid 0", now: h.now) }
    }
}

/// Every gate, in order, table-driven.
@Suite struct GateTests {
    @Test func capManualTurnsEveryFullIntoANotification() throws {
        var spec = TableSpec()
        spec.cap = "manual"
        spec.triggers = [
            TableSpec.trigger(name: "a"), TableSpec.trigger(name: "b", metric: "latency", condition: #"{"above": 1}"#),
        ]
        var h = try Harness(spec)
        h.knownGoodThenDeploy()
        h.tick(["error_rate": .value(0.5), "latency": .value(5)])
        h.tick(["error_rate": .value(0.5), "latency": .value(5)])
        h.tick(["error_rate": .value(0.5), "latency": .value(5)])
        #expect(h.orders.isEmpty)
        #expect(h.decisions() == ["notify", "notify"])
        let d = try #require(h.events.first { $0.kind == .decision })
        #expect(d.reason?.contains("rollbackd rollback --to v1") == true)
        #expect(d.automation == .manual)
    }

    @Test func offTriggersAreIgnored() throws {
        var spec = TableSpec()
        spec.triggers = [TableSpec.trigger(automation: "off")]
        var h = try Harness(spec)
        h.knownGoodThenDeploy()
        h.tick(errors: 0.9, count: 10)
        #expect(h.events.filter { $0.trigger != nil }.isEmpty)
        #expect(h.orders.isEmpty)
    }

    @Test func semiWaitsForApprovalAndDenyCloses() throws {
        var spec = TableSpec()
        spec.triggers = [TableSpec.trigger(automation: "semi")]
        var h = try Harness(spec)
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 6)
        #expect(h.orders.isEmpty)
        #expect(h.decisions() == ["await_approval"])
        #expect(h.count(.approvalRequested) == 1)
        let id = try #require(h.state.approvals.first?.incident)
        let events = try h.engine.deny(id, by: "uid 1000", now: h.now)
        #expect(events.map(\.kind).contains(.approvalDenied))
        #expect(h.engine.state.incident(id)?.outcome == .denied)
        #expect(throws: EngineRefusal.self) { try h.engine.approve(id, by: "uid 1000", now: h.now) }
    }

    @Test func semiApprovedRollsBack() throws {
        var spec = TableSpec()
        spec.triggers = [TableSpec.trigger(automation: "semi")]
        var h = try Harness(spec)
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        let id = try #require(h.state.approvals.first?.incident)
        let out = try h.engine.approve(id, by: "uid 1000", now: h.now)
        #expect(
            out.rollback
                == RollbackOrder(
                    incident: id, from: "v2", to: "v1", trigger: "errors", automatic: false,
                    requestedBy: "uid 1000", orderedAt: h.now))
    }

    @Test func approvalIsWithdrawnWhenTheTriggerClears() throws {
        var spec = TableSpec()
        spec.triggers = [TableSpec.trigger(automation: "semi")]
        var h = try Harness(spec)
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        #expect(h.state.approvals.count == 1)
        h.tick(errors: 0.0, count: 3)
        #expect(h.state.approvals.isEmpty)
        #expect(h.count(.approvalWithdrawn) == 1)
        #expect(h.state.incidents.first?.outcome == .recovered)
    }

    @Test func dryRunSaysWhatItWouldDo() throws {
        var spec = TableSpec()
        spec.triggers = [TableSpec.trigger(dryRun: true)]
        var h = try Harness(spec)
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 5)
        #expect(h.orders.isEmpty)
        let d = try #require(h.events.first { $0.kind == .decision })
        #expect(d.decision == "blocked")
        #expect(d.reason == "dry run: would roll back v2 -> v1")
        #expect(d.dryRun == true)
        #expect(h.count(.decision) == 1, "a standing decision is reported once")
    }

    @Test func outsideTheDeployWindowARollbackWouldNotHelp() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.tick(errors: 0.01, count: 1)
        h.now = h.now + .hours(2)
        h.tick(errors: 0.3, count: 3)
        #expect(h.orders.isEmpty)
        #expect(h.events.first { $0.kind == .gateBlocked }?.extra["gate"] == "deploy_window")
    }

    @Test func neverKnownGoodIsNoTarget() throws {
        var h = try Harness()
        h.tick(errors: 0.01, count: 2) // v1 seen, but not soaked
        h.version = "v2"
        h.tick(errors: 0.3, count: 3)
        #expect(h.orders.isEmpty)
        #expect(h.events.first { $0.kind == .gateBlocked }?.extra["gate"] == "target")
    }

    @Test func neverBackToARolledBackFromRelease() throws {
        // v1 good; v2 bad -> back to v1. Then v2 is redeployed... and v3 on top of it goes bad:
        // the only known-good candidates are v1 (fine) and v2 (rolled back from: never).
        var spec = TableSpec()
        spec.safety =
            #"{"cooldown": "0s", "budget": {"max": 10, "window": "1h"}, "deployWindow": "1h", "soak": "10s", "verifyFor": "5s", "baselineWindow": "1m"}"#
        var h = try Harness(spec)
        h.knownGoodThenDeploy("v2")
        h.tick(errors: 0.3, count: 3)
        h.finishRollback()
        // An operator redeploys v2 and it soaks clean (known-good again by time, but rolled back from).
        h.version = "v2"
        h.tick(errors: 0.0, count: 15)
        h.version = "v3"
        h.tick(errors: 0.3, count: 3)
        #expect(h.orders.count == 2)
        #expect(h.orders.last?.to == "v1")
        // And with v1 not deployable, there is no target at all.
        var h2 = try Harness(spec)
        h2.deployable = ["v2", "v3"]
        h2.knownGoodThenDeploy("v2")
        h2.tick(errors: 0.3, count: 3)
        #expect(h2.orders.isEmpty)
    }

    @Test func cooldownBlocksThenLiftsLater() throws {
        var spec = TableSpec()
        spec.safety =
            #"{"cooldown": "1m", "budget": {"max": 5, "window": "1h"}, "deployWindow": "1h", "soak": "10s", "verifyFor": "5s", "baselineWindow": "1m"}"#
        var h = try Harness(spec)
        h.knownGoodThenDeploy("v2")
        h.tick(errors: 0.3, count: 3)
        h.finishRollback()
        h.tick(errors: 0.0, count: 12) // v1 soaks again
        h.version = "v3"
        h.tick(errors: 0.3, count: 3)
        #expect(h.orders.count == 1)
        #expect(h.events.last { $0.kind == .gateBlocked }?.extra["gate"] == "cooldown")
        h.tick(errors: 0.3, count: 40)
        #expect(h.orders.count == 2, "once the cooldown has passed, the still-firing trigger rolls back")
    }

    @Test func budgetStopsTheThirdRollback() throws {
        var spec = TableSpec()
        spec.safety =
            #"{"cooldown": "0s", "budget": {"max": 2, "window": "1h"}, "deployWindow": "1h", "soak": "10s", "verifyFor": "5s", "baselineWindow": "1m"}"#
        var h = try Harness(spec)
        h.knownGoodThenDeploy("v2")
        for bad in ["v3", "v4"] {
            h.tick(errors: 0.3, count: 3)
            h.finishRollback()
            h.tick(errors: 0.0, count: 12)
            h.version = bad
        }
        h.tick(errors: 0.3, count: 3)
        #expect(h.orders.count == 2)
        #expect(h.events.last { $0.kind == .gateBlocked }?.extra["gate"] == "budget")
    }

    @Test func pauseCapsAtManualAndExpires() throws {
        var h = try Harness()
        h.knownGoodThenDeploy()
        h.events += h.engine.pause(until: h.now + .seconds(30), by: "uid 0", now: h.now)
        h.tick(errors: 0.3, count: 3)
        #expect(h.orders.isEmpty)
        #expect(h.decisions() == ["notify"])
        #expect(h.events.first { $0.kind == .decision }?.automation == .manual)
        h.tick(errors: 0.3, count: 30)
        #expect(h.count(.automationResumed) == 1)
        #expect(h.orders.count == 1, "after the window the full trigger acts")
    }
}

@Suite struct BlindAndBaselineTests {
    @Test func noDataForeverNeverRollsBack() throws {
        for policy in ["hold", "ok"] {
            var spec = TableSpec()
            spec.triggers = [TableSpec.trigger(noData: policy)]
            var h = try Harness(spec)
            h.knownGoodThenDeploy()
            h.tick(errors: nil, count: 500)
            #expect(h.orders.isEmpty)
            #expect(h.count(.sourceBlind) == 1, "blind is said once, not every tick")
            let blind = try #require(h.events.first { $0.kind == .sourceBlind })
            #expect(blind.reason == "connection refused")
            #expect(blind.metric == "error_rate")
            h.tick(errors: 0.0)
            #expect(h.count(.sourceRecovered) == 1)
        }
    }

    @Test func aBlindReleaseDoesNotBecomeKnownGood() throws {
        var h = try Harness()
        h.tick(errors: nil, count: 100)
        #expect(h.state.ledger.release("v1")?.isKnownGood == false)
        h.tick(errors: 0.0, count: 12)
        #expect(h.state.ledger.release("v1")?.isKnownGood == true)
        #expect(h.count(.releaseKnownGood) == 1)
    }

    /// A soak shorter than detection (2 s against 5 breaches at 1 s) must not make a breaching release a target.
    @Test func aPendingTriggerDefersKnownGood() throws {
        var spec = TableSpec()
        spec.triggers = [TableSpec.trigger(breaches: 5, clears: 2)]
        spec.safety =
            #"{"cooldown": "10m", "budget": {"max": 2, "window": "1h"}, "deployWindow": "1h", "soak": "2s", "verifyFor": "10s", "baselineWindow": "1m", "blindAfter": 3}"#
        var h = try Harness(spec)
        h.tick(errors: 0.3, count: 4)
        #expect(h.state.triggers["errors"]?.phase == .pending)
        #expect(h.state.ledger.release("v1")?.isKnownGood == false, "known-good while a trigger was pending")
        h.tick(errors: 0.3, count: 1)
        #expect(h.state.triggers["errors"]?.phase == .firing)
        #expect(h.count(.releaseKnownGood) == 0)
        // Once it is healthy again and soaks, it does become known-good.
        h.tick(errors: 0.0, count: 8)
        #expect(h.state.ledger.release("v1")?.isKnownGood == true)
    }

    @Test func ratioTriggersUseThePreviousReleasesMedianAndHoldWithout() throws {
        var spec = TableSpec()
        spec.triggers = [
            TableSpec.trigger(
                name: "slow", metric: "latency", condition: #"{"aboveBaseline": 2.0}"#, automation: "full")
        ]
        var h = try Harness(spec)
        // v1 has no baseline (first release): even a huge latency holds.
        for v in [0.1, 0.12, 0.1, 9.0, 0.11, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1] { h.tick(["latency": .value(v)]) }
        #expect(h.state.triggers["slow"]?.phase == .ok)
        #expect(h.state.triggers["slow"]?.lastReason == "no baseline for latency yet")
        h.version = "v2"
        h.tick(["latency": .value(0.19)])
        #expect(h.state.ledger.release("v2")?.baseline["latency"] == 0.1)
        #expect(h.state.triggers["slow"]?.phase == .ok)
        h.tick(["latency": .value(0.21)])
        #expect(h.state.triggers["slow"]?.phase == .pending)
        #expect(h.state.triggers["slow"]?.lastThreshold == 0.2)
    }

    @Test func reloadKeepsStateOfSurvivingTriggers() throws {
        var h = try Harness()
        h.tick(errors: 0.3, count: 2)
        #expect(h.state.triggers["errors"]?.count == 2)
        var spec = TableSpec()
        spec.triggers = [
            TableSpec.trigger(), TableSpec.trigger(name: "new", metric: "latency", condition: #"{"above": 1}"#),
        ]
        h.engine.reconfigure(try spec.thresholds())
        #expect(h.state.triggers["errors"]?.count == 2)
        h.tick(errors: 0.3)
        #expect(h.state.triggers["errors"]?.phase == .firing)
        spec.triggers = [TableSpec.trigger(metric: "latency")]
        h.engine.reconfigure(try spec.thresholds())
        #expect(h.state.triggers["errors"] == nil, "same name on another metric starts fresh")
    }

    @Test func aNewDeployResetsTriggersAndSupersedesTheOldIncident() throws {
        var spec = TableSpec()
        spec.triggers = [TableSpec.trigger(automation: "manual")]
        var h = try Harness(spec)
        h.knownGoodThenDeploy()
        h.tick(errors: 0.3, count: 3)
        let id = try #require(h.state.openIncidents.first?.id)
        h.version = "v3"
        h.tick(errors: 0.3)
        #expect(h.state.incident(id)?.outcome == .superseded)
        #expect(h.state.triggers["errors"]?.phase == .pending)
    }
}
