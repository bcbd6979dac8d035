import Testing
@testable import RollbackCore

/// Monthly rollback drills: the staleness rule behind the `check`/`status` warning, with fixed timestamps.
@Suite struct DrillPolicyTests {
    static let now = Timestamp(millisecondsSinceEpoch: 1_795_355_580_000) // 2026-11-22T13:53:00Z
    static let day: Int64 = 86_400_000

    static func drill(daysAgo: Double, _ outcome: DrillOutcome = .verified, rolledForward: Bool = true) -> DrillRecord {
        let end = Timestamp(millisecondsSinceEpoch: now.millisecondsSinceEpoch - Int64(daysAgo * Double(day)))
        return DrillRecord(
            id: "drill-\(daysAgo)", startedAt: end - .seconds(20), finishedAt: end, from: "v2", to: "v1",
            strategy: "symlink", outcome: outcome, recoverySeconds: outcome == .verified ? 12 : nil,
            rollbackSeconds: 0.01, rolledForward: rolledForward, detail: "")
    }

    @Test(arguments: [
        // (drills, stale?, fragment of the warning)
        ([DrillRecord](), true, "no rollback drill has been recorded"),
        ([drill(daysAgo: 1)], false, ""),
        ([drill(daysAgo: 29.9)], false, ""),
        ([drill(daysAgo: 30)], false, ""), // exactly 30 days: still within the month
        ([drill(daysAgo: 30.01)], true, "30 days ago"),
        ([drill(daysAgo: 45)], true, "45 days ago"),
        ([drill(daysAgo: 45), drill(daysAgo: 3)], false, ""), // the newest success counts
        ([drill(daysAgo: 2, .verificationFailed)], true, "no successful rollback drill among the 1 recorded"),
        ([drill(daysAgo: 40), drill(daysAgo: 1, .rollbackFailed)], true, "40 days ago"), // failures do not refresh it
        ([drill(daysAgo: 1, .verified, rolledForward: false)], true, "no successful"), // left on the old release
    ])
    func staleness(drills: [DrillRecord], stale: Bool, fragment: String) {
        let w = DrillPolicy.warning(drills, now: Self.now)
        #expect((w != nil) == stale, "\(w ?? "nil")")
        if let w { #expect(w.contains(fragment), "\(w)") }
    }

    @Test func lastSuccessIsTheNewestVerifiedDrill() {
        let records = [Self.drill(daysAgo: 10), Self.drill(daysAgo: 2), Self.drill(daysAgo: 1, .rollForwardFailed)]
        #expect(DrillPolicy.lastSuccess(records)?.id == "drill-2.0")
    }
}
