import RollbackCore

/// The mapping between rollbackd's `Event` and journald fields: one `MESSAGE_ID` per event kind (stable forever:
/// `systemd/rollbackd.catalog` and operators' queries depend on it), `PRIORITY` from the severity, and uppercase
/// `ROLLBACKD_*` fields that `journalctl ROLLBACKD_EVENT=decision` and `rollbackd history` select on.
public enum JournalFields {
    /// The fixed 128-bit id (32 lowercase hex digits) of each event kind. Never change one: add new kinds only.
    public static func messageID(for kind: EventKind) -> String {
        switch kind {
        case .triggerPending: return "a4916ec159d8472784c9130bc41be837"
        case .triggerFiring: return "48b475b202ba4e1dbc4bc3fa81925b90"
        case .triggerRecovering: return "481a3601bf7d412cb3679b4dc560d7c5"
        case .triggerCleared: return "9bad028948a94d1d9a49d2b407824fd7"
        case .decision: return "8f8f5486dada48ee863088cae33b5979"
        case .gateBlocked: return "1b5a527b73d841b48d64dd23926eaff9"
        case .approvalRequested: return "fdf3623fefeb4cbc8c0333dbcf9bd7ab"
        case .approvalGiven: return "bf3c13c531c64f50aaa3c3a876df2687"
        case .approvalDenied: return "a17826ecdf1e4536bcc8074b297796da"
        case .approvalWithdrawn: return "053e8e8da3b04e21b25a983f66e775b6"
        case .rollbackStarted: return "cea5650388504efd997de4a8412544c8"
        case .rollbackPhase: return "4436d64e351a4d76bec61581c58b7f47"
        case .rollbackFinished: return "8e7910bbc1a04099b4b79167f183199e"
        case .rollbackFailed: return "32346cde2457452bbf097d92c88034d3"
        case .verificationPassed: return "420387063731454dbf51d1321465fe90"
        case .verificationFailed: return "ec21c83d1a234dbd97728794ed6a7ed5"
        case .automationHalted: return "8e36f40586d24440a0faef460f7686d0"
        case .automationRearmed: return "e315a76a51574b96b9b9bc6faabacce9"
        case .automationPaused: return "9f42618d96c2442aa012e1b827b0c948"
        case .automationResumed: return "01526332073b4c4c8b6ec1d4270ede90"
        case .sourceBlind: return "0c5e0160e09b4b33bcf252492df1556b"
        case .sourceRecovered: return "cd55eed96ab943bdbe3f66b6fd647c52"
        case .releaseDeployed: return "47261f0c34784b92b1ef00bca3194aad"
        case .releaseKnownGood: return "105aa90e10c149faba31e32f9b3af6ba"
        case .incidentOpened: return "2b95b2e07c4d4f2ba72bfd99473a73de"
        case .incidentClosed: return "ae81b2699c1d4d49b6a223cc8ec8eb46"
        case .configLoaded: return "a4d9bc29e976452ab7c50b967807d167"
        case .configRejected: return "b6c4fc82193a4e5fbc9ca9d0b9228ffe"
        case .tickOverrun: return "6dcddaac78a44ffda5597de5d78ef5ec"
        case .deliveryFailed: return "6cce040fcb374215981fcfec8def82bd"
        case .executorRequest: return "122261e37bc94cb0b7ba4900e2bf5fba"
        case .executorPhase: return "ec14e2fe793c4f0d90a691f62961b424"
        case .fleetLeaderElected: return "73be0694916b46e68b51d5ddbf36dd49"
        case .fleetLeaderLost: return "4b4589bbd4334425b0ffec505463d0ea"
        case .fleetHostJoined: return "5901668dac774456bc7252098b4130a5"
        case .fleetHostLeft: return "9449dcbfe2d8479689803e754b5ee0b9"
        case .fleetPartitioned: return "31856b4000e2438688de5596d8a58498"
        case .fleetRejoined: return "7605728a1cf649309d421bf44e046a19"
        }
    }

    private static let kindsByMessageID: [String: EventKind] = {
        var map: [String: EventKind] = [:]
        for kind in EventKind.allCases { map[messageID(for: kind)] = kind }
        return map
    }()

    public static func kind(forMessageID id: String) -> EventKind? { kindsByMessageID[id.lowercased()] }

    /// syslog priority: critical → 2 (crit), high → 3 (err), medium → 4 (warning), low → 6 (info).
    /// So `journalctl -p err` shows exactly the high and critical events.
    public static func priority(for severity: Severity) -> Int {
        switch severity {
        case .critical: return 2
        case .high: return 3
        case .medium: return 4
        case .low: return 6
        }
    }

    public static func severity(forPriority p: Int) -> Severity {
        switch p {
        case ...2: return .critical
        case 3: return .high
        case 4, 5: return .medium
        default: return .low
        }
    }

    /// The named `ROLLBACKD_*` fields (besides extras). Extras never take one of these names.
    static let reserved: Set<String> = [
        "EVENT", "INCIDENT", "TRIGGER", "SEVERITY", "AUTOMATION", "METRIC", "VALUE", "THRESHOLD", "FROM_VERSION",
        "TO_VERSION", "DECISION", "REASON", "DRY_RUN", "SERVICE", "TIME",
    ]

    /// `callerUid` → `CALLER_UID`, `phase name` → `PHASE_NAME`: what journald accepts in a field name
    /// (A–Z, 0–9, `_`), at most 40 characters so `ROLLBACKD_` + name stays within journald's 64.
    public static func fieldSuffix(forExtraKey key: String) -> String {
        var out = ""
        var previousWasLower = false
        for scalar in key.unicodeScalars {
            let c = Character(scalar)
            if c.isASCII && c.isLetter {
                if c.isUppercase && previousWasLower { out += "_" }
                out += c.uppercased()
                previousWasLower = c.isLowercase
            } else if c.isASCII && c.isNumber {
                out.append(c)
                previousWasLower = true
            } else {
                if !out.hasSuffix("_") { out += "_" }
                previousWasLower = false
            }
        }
        while out.hasPrefix("_") { out.removeFirst() }
        while out.hasSuffix("_") { out.removeLast() }
        if out.isEmpty { out = "X" }
        if reserved.contains(out) || out.hasPrefix("EXTRA_") { out = "EXTRA_" + out }
        return String(out.prefix(40))
    }

    /// The journald fields of one event, in a fixed order. `MESSAGE` first, then the identity, then the details.
    public static func fields(
        for event: Event, identifier: String = "rollbackd",
        service: String? = nil
    ) -> [(name: String, value: String)] {
        var f: [(name: String, value: String)] = [
            ("MESSAGE", event.message),
            ("MESSAGE_ID", messageID(for: event.kind)),
            ("PRIORITY", String(priority(for: event.severity))),
            ("SYSLOG_IDENTIFIER", identifier),
            ("ROLLBACKD_EVENT", event.kind.rawValue),
            ("ROLLBACKD_SEVERITY", event.severity.rawValue),
            ("ROLLBACKD_TIME", event.at.iso8601),
        ]
        if let service { f.append(("ROLLBACKD_SERVICE", service)) }
        if let v = event.incident { f.append(("ROLLBACKD_INCIDENT", v)) }
        if let v = event.trigger { f.append(("ROLLBACKD_TRIGGER", v)) }
        if let v = event.automation { f.append(("ROLLBACKD_AUTOMATION", v.rawValue)) }
        if let v = event.metric { f.append(("ROLLBACKD_METRIC", v)) }
        if let v = event.value { f.append(("ROLLBACKD_VALUE", JSONValue.format(number: v))) }
        if let v = event.threshold { f.append(("ROLLBACKD_THRESHOLD", JSONValue.format(number: v))) }
        if let v = event.fromVersion { f.append(("ROLLBACKD_FROM_VERSION", v)) }
        if let v = event.toVersion { f.append(("ROLLBACKD_TO_VERSION", v)) }
        if let v = event.decision { f.append(("ROLLBACKD_DECISION", v)) }
        if let v = event.reason { f.append(("ROLLBACKD_REASON", v)) }
        if let v = event.dryRun { f.append(("ROLLBACKD_DRY_RUN", v ? "1" : "0")) }
        for key in event.extra.keys.sorted() {
            if let v = event.extra[key] { f.append(("ROLLBACKD_" + fieldSuffix(forExtraKey: key), v)) }
        }
        return f
    }

    /// Adds one field of an entry as `sd_journal_enumerate_data` gives it (`NAME=value`, any bytes, not
    /// NUL-terminated) to `fields`; the first value wins for a repeated name, data without `=` is skipped.
    public static func add(_ data: UnsafeRawBufferPointer, to fields: inout [String: String]) {
        guard let eq = data.firstIndex(of: UInt8(ascii: "=")) else { return }
        let name = String(decoding: data[..<eq], as: UTF8.self)
        if fields[name] == nil {
            fields[name] = String(decoding: data[(eq + 1)...], as: UTF8.self)
        }
    }

    /// An event read back from journald fields (as `sd_journal_enumerate_data` or `journalctl -o json` give them).
    /// Nil when the entry is not a rollbackd event. Extras come back with lowercase snake_case keys.
    public static func event(from fields: [String: String]) -> Event? {
        guard let kindName = fields["ROLLBACKD_EVENT"], let kind = EventKind(rawValue: kindName) else { return nil }
        let severity =
            fields["ROLLBACKD_SEVERITY"].flatMap(Severity.init(rawValue:))
            ?? severity(forPriority: fields["PRIORITY"].flatMap { Int($0) } ?? 6)
        let at =
            fields["ROLLBACKD_TIME"].flatMap(Timestamp.init(iso8601:))
            ?? fields["__REALTIME_TIMESTAMP"].flatMap { Int64($0) }.map { Timestamp(millisecondsSinceEpoch: $0 / 1000) }
            ?? Timestamp(millisecondsSinceEpoch: 0)
        var event = Event(kind: kind, at: at, message: fields["MESSAGE"] ?? "", severity: severity)
        event.incident = fields["ROLLBACKD_INCIDENT"]
        event.trigger = fields["ROLLBACKD_TRIGGER"]
        event.automation = fields["ROLLBACKD_AUTOMATION"].flatMap(AutomationLevel.init(rawValue:))
        event.metric = fields["ROLLBACKD_METRIC"]
        event.value = fields["ROLLBACKD_VALUE"].flatMap { Double($0) }
        event.threshold = fields["ROLLBACKD_THRESHOLD"].flatMap { Double($0) }
        event.fromVersion = fields["ROLLBACKD_FROM_VERSION"]
        event.toVersion = fields["ROLLBACKD_TO_VERSION"]
        event.decision = fields["ROLLBACKD_DECISION"]
        event.reason = fields["ROLLBACKD_REASON"]
        event.dryRun = fields["ROLLBACKD_DRY_RUN"].map { $0 == "1" || $0 == "true" }
        for (name, value) in fields where name.hasPrefix("ROLLBACKD_") {
            let suffix = String(name.dropFirst("ROLLBACKD_".count))
            if reserved.contains(suffix) { continue }
            event.extra[suffix.lowercased()] = value
        }
        return event
    }
}

extension Timestamp {
    /// Parses RFC 3339 / ISO 8601 in UTC or with an offset: `2026-11-22T13:53:00Z`, `2026-11-22T13:53:00.123Z`,
    /// `2026-11-22T14:53:00+01:00`, `2026-11-22 13:53:00` (taken as UTC), or a date alone (`2026-11-22`, midnight UTC).
    public init?(iso8601 text: String) {
        let b = Array(text.utf8)
        var i = 0
        func number(_ width: Int) -> Int? {
            guard i + width <= b.count else { return nil }
            var v = 0
            for k in i..<(i + width) {
                guard b[k] >= 48 && b[k] <= 57 else { return nil }
                v = v * 10 + Int(b[k] - 48)
            }
            i += width
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect(45), let month = number(2), expect(45), let day = number(2),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var hour = 0, minute = 0, second = 0, millis = 0, offsetMinutes = 0
        if i < b.count {
            guard b[i] == 84 || b[i] == 116 || b[i] == 32 else { return nil } // T, t, space
            i += 1
            guard let h = number(2), expect(58), let m = number(2), h < 24, m < 60 else { return nil }
            hour = h
            minute = m
            if expect(58) {
                guard let s = number(2), s <= 60 else { return nil }
                second = min(s, 59)
                if expect(46) {
                    var digits = 0
                    var frac = 0
                    while i < b.count, b[i] >= 48, b[i] <= 57 {
                        if digits < 3 { frac = frac * 10 + Int(b[i] - 48) }
                        digits += 1
                        i += 1
                    }
                    guard digits > 0 else { return nil }
                    if digits < 3 { for _ in digits..<3 { frac *= 10 } }
                    millis = frac
                }
            }
            if i < b.count {
                if b[i] == 90 || b[i] == 122 { // Z
                    i += 1
                } else if b[i] == 43 || b[i] == 45 { // + -
                    let sign = b[i] == 43 ? 1 : -1
                    i += 1
                    guard let oh = number(2) else { return nil }
                    _ = expect(58)
                    guard let om = number(2) else { return nil }
                    offsetMinutes = sign * (oh * 60 + om)
                } else {
                    return nil
                }
            }
            guard i == b.count else { return nil }
        }
        // Days from civil (Howard Hinnant), the inverse of `utcComponents`.
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = Int64(month > 2 ? month - 3 : month + 9)
        let doy = (153 * mp + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let ms =
            days * 86_400_000 + Int64(hour) * 3_600_000 + Int64(minute) * 60_000 + Int64(second) * 1000
            + Int64(millis) - Int64(offsetMinutes) * 60_000
        self.init(millisecondsSinceEpoch: ms)
    }
}
