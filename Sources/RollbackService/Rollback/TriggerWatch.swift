import RollbackCore
import RollbackSystem

/// The configured triggers watched for a while through the engine's own state machine, the way the daemon
/// verifies a rollback: the metrics sampled every `verifyInterval` (`Senses.observe`), judged by a fresh engine,
/// the verdict by `verificationProblems`. A drill's verification watches this way, and so does each hold of a
/// `restore` schedule, which stops at the first `full` trigger that fires.
public enum TriggerWatch {
    public struct Verdict: Sendable, Equatable {
        /// Empty: every `full` trigger clear and every smoke URL answered.
        public var problems: [String]
        public var lastVersion: String?
    }

    /// Watches for `duration`, one look per verify interval; the verdict comes with the first look at or after
    /// the deadline. `stopOnFiring`: the first look at which a `full` trigger has tripped ends the watch at once.
    /// `say` hears one line per look.
    static func watch(
        _ config: Thresholds, senses: Senses, for duration: Interval, stopOnFiring: Bool,
        say: @Sendable (String) -> Void
    ) async -> Verdict {
        var engine = Engine(config: config, state: EngineState())
        let every = config.safety.verifyInterval ?? config.interval
        let deadline = SystemTime.monotonicMs() + duration.milliseconds
        var schedule: TickSchedule?
        var smoke: [String] = []
        var lastVersion: String?
        let watched = config.triggers.filter { $0.automation.capped(by: config.automation) != .off }
        func describe(_ t: TriggerDefinition) -> String {
            let st = engine.state.triggers[t.name] ?? TriggerState()
            let value =
                st.lastValue.map { ValueFormat.format($0, unit: config.metric(named: t.metric)?.unit ?? .number) }
                ?? "no data"
            return "\(t.name) \(st.phase.rawValue) (\(value))"
        }
        while !Task.isCancelled {
            await schedule?.sleepUntilDue()
            let seen = await senses.observe(at: SystemTime.now(), smokeURLs: config.rollback.smokeURLs)
            smoke += seen.observation.smokeFailures
            lastVersion = seen.observation.version
            _ = engine.tick(seen.observation, deployable: seen.deployable)
            say("\(lastVersion ?? "?"): " + watched.map(describe).joined(separator: ", "))
            if stopOnFiring {
                let fired = watched.filter { t in
                    t.automation.capped(by: config.automation) == .full && !t.dryRun
                        && (engine.state.triggers[t.name]?.phase.isTripped ?? false)
                }
                if !fired.isEmpty {
                    return Verdict(problems: fired.map { "trigger " + describe($0) }, lastVersion: lastVersion)
                }
            }
            if SystemTime.monotonicMs() >= deadline { break }
            if schedule == nil {
                schedule = TickSchedule(startingAfter: every)
            } else {
                _ = schedule?.advance(by: every)
            }
        }
        return Verdict(problems: engine.verificationProblems(smokeFailures: smoke), lastVersion: lastVersion)
    }

    /// The watch of each hold of a restore schedule, for the runner: the triggers of `config` read through the
    /// executor's senses; why the hold failed, naming the stage, or nil.
    public static func holds(_ config: Thresholds, executor: any RollbackExecutor) -> ExecutionRunner.HoldWatch {
        let senses = RealWorld.senses(config, executor: executor)
        return { phase, duration in
            let verdict = await watch(config, senses: senses, for: duration, stopOnFiring: true, say: { _ in })
            guard !verdict.problems.isEmpty else { return nil }
            let stage = phase.description.prefix { $0 != ":" }
            return "during the hold of \(stage) (phase \(phase.name)): " + verdict.problems.joined(separator: "; ")
        }
    }
}
