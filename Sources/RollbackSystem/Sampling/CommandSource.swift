import RollbackCore

/// A `command` metric: runs an argv (never a shell) with a timeout. With `value: stdout` the first line it prints
/// is the value; with `value: exitStatus` its exit status is (0 usually means clean). A program that cannot start,
/// times out, is killed, or prints no number gives no-data with the reason.
public struct CommandSource: ReportingSource {
    public let metricNames: [String]
    public let config: CommandConfig

    public init(name: String, config: CommandConfig) {
        metricNames = [name]
        self.config = config
    }

    public func report(now: Timestamp) async -> SourceReport {
        let name = metricNames[0]
        let shown = ProcessRunner.display(config.argv)
        let result: ProcessResult
        do {
            result = try await ProcessRunner.run(config.argv, timeout: config.timeout, maxOutputBytes: 64 << 10)
        } catch {
            return SourceReport(samples: [name: .noData(reason: error.description)])
        }
        return SourceReport(samples: [name: Self.interpret(result, config: config, shown: shown)])
    }

    static func interpret(_ r: ProcessResult, config: CommandConfig, shown: String) -> SampleValue {
        switch (config.value, r.termination) {
        case (_, .timedOut):
            return .noData(reason: "\(shown) timed out after \(config.timeout)")
        case let (_, .signalled(sig)):
            return .noData(reason: "\(shown) was killed by signal \(sig)")
        case let (.exitStatus, .exited(code)):
            return .value(Double(code))
        case let (.stdout, .exited(code)):
            guard code == 0 else { return .noData(reason: "\(shown) failed: \(r.summary(timeout: config.timeout))") }
            let first =
                r.stdout.split(separator: UInt8(ascii: "\n"), maxSplits: 1, omittingEmptySubsequences: false).first
                ?? []
            let text = httpTrim(String(decoding: first, as: UTF8.self))
            guard let v = ExpositionParser.parseValue(text), v.isFinite else {
                return .noData(reason: "\(shown) printed \(Reasons.excerpt(Array(first))), not a number")
            }
            return .value(v)
        }
    }
}
