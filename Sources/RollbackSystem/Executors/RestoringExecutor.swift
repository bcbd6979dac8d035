import RollbackCore

/// A strategy whose traffic a plan's `restore` schedule gives back gradually (`haproxy-canary` in weight mode,
/// `nginx-blue-green`): after every step's own phases, each stage is a phase `restore-<w>` that gives weight `w`
/// back and confirms it, then (with a `hold`) a phase `hold-<w>` that the runner does not run through the executor:
/// it watches the triggers for that long, and a firing trigger calls `drainAgain` and fails the rollback.
public protocol RestoringExecutor: RollbackExecutor {
    var restore: [RestoreStage] { get }
    var phaseTimeout: Interval { get }
    /// What the phase `restore-<weight>` does, for its description.
    func restoreAction(weight: Int) -> String
    /// What `drainAgain` does, for the holds' descriptions (`sets app/canary back to weight 0`).
    var drainAgainAction: String { get }
}

extension RestoringExecutor {
    /// The restore schedule's phases, which a plan runs after every step's own phases.
    public func restorePhases() -> [RollbackPhase] {
        var phases: [RollbackPhase] = []
        for (i, stage) in restore.enumerated() {
            let of = "stage \(i + 1)/\(restore.count)"
            phases.append(
                RollbackPhase(
                    name: "restore-\(stage.weight)", description: "\(of): \(restoreAction(weight: stage.weight))",
                    timeout: phaseTimeout))
            if let hold = stage.hold {
                phases.append(
                    RollbackPhase(
                        name: "hold-\(stage.weight)",
                        description:
                            "\(of): hold weight \(stage.weight) for \(hold) while the triggers watch; a firing trigger \(drainAgainAction) and fails the rollback",
                        timeout: hold + phaseTimeout, hold: hold))
            }
        }
        return phases
    }

    /// The weight of the phase `restore-<w>` of this schedule (nil: not one of its phases).
    public func restoreWeight(phase name: String) -> Int? {
        guard name.hasPrefix("restore-"), let w = Int(name.dropFirst("restore-".count)),
            restore.contains(where: { $0.weight == w })
        else { return nil }
        return w
    }
}
