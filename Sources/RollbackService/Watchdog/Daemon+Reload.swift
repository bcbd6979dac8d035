import RollbackCore
import Logging
import RollbackSystem

/// Reloading the configuration: validated completely before anything is swapped; an invalid file keeps the last
/// good configuration running.
extension Daemon {
    // MARK: reload

    func checkConfigChanged() async {
        let stamp = FileStamp(path: options.configPath)
        if stamp != configStamp {
            await reload(reason: "\(options.configPath) changed")
        }
    }

    /// Validates everything, then swaps; an invalid file keeps the last good configuration running.
    public func reload(reason: String) async {
        systemd.reloading()
        configStamp = FileStamp(path: options.configPath)
        let now = options.clock.now()
        do {
            let loaded = try Self.loadConfig(options)
            let newWorld = try makeWorld(loaded.thresholds, options.stateDirectory)
            let telemetryNote = replaceMetricsServer(for: loaded.thresholds.telemetry)
            let fleetBefore = engine.config.fleet
            engine.reconfigure(loaded.thresholds)
            publishSnapshot()
            let old = world
            world = newWorld
            await old.shutdown()
            await publishTelemetry()
            var reasons = loaded.warningLines + (telemetryNote.map { [$0] } ?? [])
            if loaded.thresholds.fleet != fleetBefore {
                reasons.append("the fleet section changed: it takes effect when rollbackd restarts")
            }
            await emit(
                Event(
                    kind: .configLoaded, at: now,
                    message:
                        "Configuration reloaded (\(reason)): \(loaded.thresholds.triggers.count) triggers, interval \(loaded.thresholds.interval).",
                    severity: .low,
                    reason: reasons.isEmpty ? reason : reasons.joined(separator: "; ")))
        } catch {
            await emit(
                Event(
                    kind: .configRejected, at: now,
                    message: "Configuration rejected (\(reason)); the last good configuration keeps running: \(error)",
                    severity: .high, reason: "\(error)"))
        }
        systemd.ready(status: statusLine())
    }

    /// On reload: serves `/metrics` where the new configuration says (or stops serving it); nil when that worked,
    /// or the reason it could not listen (the rest of the configuration still applies).
    private func replaceMetricsServer(for telemetry: TelemetryConfig?) -> String? {
        guard telemetry?.listen != metricsServer?.listen else { return nil }
        metricsServer?.stop()
        metricsServer = nil
        guard let t = telemetry else { return nil }
        let board = self.telemetry
        do {
            let server = try MetricsServer(listen: t.listen, page: { board.page() })
            server.start()
            metricsServer = server
            return nil
        } catch {
            log.error("\(error)", metadata: ["listen": "\(t.listen)"])
            return "\(error); /metrics is not served"
        }
    }
}
