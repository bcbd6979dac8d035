import RollbackCore

/// Builds the executor for `rollback.strategy`.
public enum Executors {
    /// - Parameter stateDirectory: where executors keep copies of files they overwrite (`$STATE_DIRECTORY`).
    public static func make(_ config: RollbackConfig, stateDirectory: String) -> any RollbackExecutor {
        let t = config.phaseTimeout
        switch config.strategy {
        case let .symlink(s): return SymlinkExecutor(s, phaseTimeout: t)
        case let .nginxBlueGreen(s): return NginxBlueGreenExecutor(s, phaseTimeout: t, stateDirectory: stateDirectory)
        case let .haproxyCanary(s): return HAProxyCanaryExecutor(s, phaseTimeout: t)
        case let .systemdUnit(s): return SystemdUnitExecutor(s, phaseTimeout: t)
        case let .kubernetes(s): return KubernetesExecutor(s, phaseTimeout: t)
        case let .dockerSwarm(s): return DockerSwarmExecutor(s, phaseTimeout: t)
        case let .featureFlag(s): return FeatureFlagExecutor(s, phaseTimeout: t)
        case let .config(s): return ConfigExecutor(s, phaseTimeout: t, stateDirectory: stateDirectory)
        case let .command(s): return CommandExecutor(s, phaseTimeout: t)
        }
    }
}
