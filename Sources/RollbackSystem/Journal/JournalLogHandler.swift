import Logging
import RollbackCore

/// A swift-log handler for the daemon's general logs: journald entries with `PRIORITY`, `SYSLOG_IDENTIFIER`,
/// `CODE_FILE`/`CODE_LINE`/`CODE_FUNC`, the logger label as `ROLLBACKD_LOGGER`, and each metadata key as an
/// uppercase `ROLLBACKD_*` field; on stderr (no journal socket) the same in one readable line.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    public let label: String
    public let identifier: String
    public let writer: JournalWriter

    public init(
        label: String, identifier: String = "rollbackd", writer: JournalWriter = JournalWriter(),
        logLevel: Logger.Level = .info
    ) {
        self.label = label
        self.identifier = identifier
        self.writer = writer
        self.logLevel = logLevel
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// swift-log level → syslog priority.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var fields: [(name: String, value: String)] = [
            ("MESSAGE", event.message.description),
            ("PRIORITY", String(Self.priority(event.level))),
            ("SYSLOG_IDENTIFIER", identifier),
            ("ROLLBACKD_LOGGER", label),
            ("CODE_FILE", event.file),
            ("CODE_LINE", String(event.line)),
            ("CODE_FUNC", event.function),
        ]
        for key in merged.keys.sorted() {
            guard let value = merged[key] else { continue }
            fields.append(("ROLLBACKD_" + JournalFields.fieldSuffix(forExtraKey: key), value.description))
        }
        if writer.target == .stderr {
            // CODE_* would only clutter a terminal line.
            fields.removeAll { $0.name.hasPrefix("CODE_") }
        }
        writer.send(fields)
    }
}

public enum RollbackLogging {
    /// Points swift-log at journald (or stderr without a journal socket). Call once, early in `main`.
    public static func bootstrap(
        identifier: String = "rollbackd", target: JournalTarget = .automatic,
        level: Logger.Level = .info
    ) {
        let writer = JournalWriter(target: target)
        LoggingSystem.bootstrap { label in
            JournalLogHandler(label: label, identifier: identifier, writer: writer, logLevel: level)
        }
    }
}
