/// The Prometheus text exposition format (version 0.0.4, what `/metrics` endpoints serve), parsed from bytes.
///
/// Pure and fast: one pass over the bytes, no regular expressions, no Foundation. Strings are made only for the
/// samples the caller keeps, so a 10 MB exposition costs little when only a few families matter.

/// One label of a sample.
public struct PromLabel: Sendable, Hashable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// One sample line: `name{labels} value [timestamp]`.
public struct PromSample: Sendable, Equatable {
    public var name: String
    /// In the order written.
    public var labels: [PromLabel]
    public var value: Double
    /// Milliseconds since the epoch, when the line carries one.
    public var timestamp: Int64?

    public init(name: String, labels: [PromLabel] = [], value: Double, timestamp: Int64? = nil) {
        self.name = name
        self.labels = labels
        self.value = value
        self.timestamp = timestamp
    }

    public func label(_ name: String) -> String? {
        labels.first { $0.name == name }?.value
    }

    public static func == (a: PromSample, b: PromSample) -> Bool {
        a.name == b.name && a.labels == b.labels && a.timestamp == b.timestamp
            && (a.value == b.value || (a.value.isNaN && b.value.isNaN))
    }
}

public enum PromMetricType: String, Sendable, CaseIterable {
    case counter, gauge, histogram, summary, untyped
}

/// A parsed exposition.
public struct Exposition: Sendable, Equatable {
    /// The kept samples, in file order.
    public var samples: [PromSample]
    /// Family name → type, from `# TYPE` lines (all of them, kept or not).
    public var types: [String: PromMetricType]
    /// Number of lines read.
    public var lines: Int
    /// Number of sample lines read (kept or not).
    public var sampleLines: Int

    public init(samples: [PromSample] = [], types: [String: PromMetricType] = [:], lines: Int = 0, sampleLines: Int = 0)
    {
        self.samples = samples
        self.types = types
        self.lines = lines
        self.sampleLines = sampleLines
    }

    public func samples(named name: String) -> [PromSample] {
        samples.filter { $0.name == name }
    }
}

/// Why an exposition could not be read: `line 17: malformed sample …`.
public struct ExpositionError: Error, Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var message: String
    public init(line: Int, message: String) {
        self.line = line
        self.message = message
    }
    public var description: String { "line \(line): \(message)" }
}

public enum ExpositionParser {
    /// Parses `bytes`. With `keeping`, only samples whose name is in the set are returned (every line is still
    /// checked). Like Prometheus, any malformed line fails the whole exposition — a truncated body must not be
    /// read as smaller counters — and the body must end with a newline (a missing one means it was cut off).
    /// Label values of kept samples must be valid UTF-8.
    public static func parse(_ bytes: [UInt8], keeping: Set<String>? = nil) throws(ExpositionError) -> Exposition {
        let keep = keeping.map { set in set.map { Array($0.utf8) } }
        let result = bytes.withUnsafeBufferPointer { buf -> Result<Exposition, ExpositionError> in
            var p = Parser(buf: buf, keep: keep)
            do throws(ExpositionError) {
                try p.run()
                return .success(
                    Exposition(samples: p.samples, types: p.types, lines: p.line, sampleLines: p.sampleLines))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Parses one value the way the text format writes it: decimal or exponent notation, `NaN`, `+Inf`, `-Inf`.
    public static func parseValue(_ text: String) -> Double? {
        Array(text.utf8).withUnsafeBufferPointer { b in Parser.parseFloat(b, 0, b.count) }
    }
}

private struct Parser {
    let buf: UnsafeBufferPointer<UInt8>
    let keep: [[UInt8]]?
    var i = 0
    var line = 0
    var sampleLines = 0
    var samples: [PromSample] = []
    var types: [String: PromMetricType] = [:]

    init(buf: UnsafeBufferPointer<UInt8>, keep: [[UInt8]]?) {
        self.buf = buf
        self.keep = keep
        // One slot per 64 bytes of input, a power of two from 16 to 4,096: a 1 KB exposition, scraped from every
        // instance on every tick, does not allocate and destroy 4,096 slots (15 % of the daemon's CPU at 100 targets).
        var slots = 16
        while slots < 4096 && slots * 64 < buf.count { slots <<= 1 }
        internTable = [(hash: UInt64, string: String)?](repeating: nil, count: slots)
        internMask = UInt64(slots - 1)
    }

    // Character classes.
    @inline(__always) static func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
    @inline(__always) static func isNameStart(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F || c == 0x3A
    }
    @inline(__always) static func isNameChar(_ c: UInt8) -> Bool { isNameStart(c) || (c >= 0x30 && c <= 0x39) }
    @inline(__always) static func isLabelStart(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || c == 0x5F
    }
    @inline(__always) static func isLabelChar(_ c: UInt8) -> Bool { isLabelStart(c) || (c >= 0x30 && c <= 0x39) }

    func err(_ message: String) -> ExpositionError { ExpositionError(line: line, message: message) }

    /// Strings already made, by a hash of their bytes: metric names, label names and most label values repeat
    /// on every line, so each is allocated once per exposition instead of once per sample.
    var internTable: [(hash: UInt64, string: String)?]
    let internMask: UInt64

    mutating func interned(_ start: Int, _ end: Int) -> String {
        // Up to 15 bytes a String is stored inline: nothing to save.
        if end - start <= 15 { return text(start, end) }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for k in start..<end { h = (h ^ UInt64(buf[k])) &* 0x100_0000_01b3 }
        let slot = Int(h & internMask)
        if let e = internTable[slot], e.hash == h {
            let same =
                e.string.utf8.withContiguousStorageIfAvailable { sb -> Bool in
                    guard sb.count == end - start else { return false }
                    for k in 0..<sb.count where sb[k] != buf[start + k] { return false }
                    return true
                } ?? false
            if same { return e.string }
        }
        let s = text(start, end)
        internTable[slot] = (h, s)
        return s
    }

    func text(_ start: Int, _ end: Int) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: buf[start..<end]), as: UTF8.self)
    }

    /// A short, printable rendering of what was found, for messages.
    func found(_ start: Int, _ end: Int) -> String {
        if start >= end { return "the end of the line" }
        let stop = min(end, start + 24)
        var s = ""
        for b in buf[start..<stop] {
            s += (b >= 0x20 && b < 0x7F) ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
        }
        return "\"" + s + (stop < end ? "…" : "") + "\""
    }

    mutating func run() throws(ExpositionError) {
        let n = buf.count
        while i < n {
            line += 1
            var end = i
            while end < n && buf[end] != 0x0A { end += 1 }
            if end == n {
                throw err("truncated: the exposition does not end with a newline (was the response cut off?)")
            }
            var lineEnd = end
            if lineEnd > i && buf[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            try parseLine(i, lineEnd)
            i = end + 1
        }
    }

    mutating func parseLine(_ start: Int, _ end: Int) throws(ExpositionError) {
        var j = start
        while j < end && Parser.isBlank(buf[j]) { j += 1 }
        if j == end { return }
        if buf[j] == 0x23 { // '#'
            parseComment(j + 1, end)
            return
        }
        try parseSample(j, end)
    }

    /// `# TYPE name type` is recorded; `# HELP` and other comments are skipped.
    mutating func parseComment(_ start: Int, _ end: Int) {
        var j = start
        while j < end && Parser.isBlank(buf[j]) { j += 1 }
        let kw = j
        while j < end && !Parser.isBlank(buf[j]) { j += 1 }
        guard j - kw == 4, buf[kw] == 0x54, buf[kw + 1] == 0x59, buf[kw + 2] == 0x50, buf[kw + 3] == 0x45 else {
            return
        }
        while j < end && Parser.isBlank(buf[j]) { j += 1 }
        let nameStart = j
        while j < end && Parser.isNameChar(buf[j]) { j += 1 }
        let nameEnd = j
        while j < end && Parser.isBlank(buf[j]) { j += 1 }
        let typeStart = j
        while j < end && !Parser.isBlank(buf[j]) { j += 1 }
        guard nameEnd > nameStart, let type = PromMetricType(rawValue: text(typeStart, j)) else { return }
        types[text(nameStart, nameEnd)] = type
    }

    func kept(_ start: Int, _ end: Int) -> Bool {
        guard let keep else { return true }
        let len = end - start
        outer: for k in keep where k.count == len {
            for (o, b) in k.enumerated() where buf[start + o] != b { continue outer }
            return true
        }
        return false
    }

    mutating func parseSample(_ start: Int, _ end: Int) throws(ExpositionError) {
        sampleLines += 1
        var j = start
        guard Parser.isNameStart(buf[j]) else {
            throw err("malformed sample: expected a metric name, found \(found(j, end))")
        }
        while j < end && Parser.isNameChar(buf[j]) { j += 1 }
        let nameEnd = j
        let keepIt = kept(start, nameEnd)
        let name = keepIt ? interned(start, nameEnd) : ""
        var labels: [PromLabel] = []
        let afterName = j
        while j < end && Parser.isBlank(buf[j]) { j += 1 }
        if j < end && buf[j] == 0x7B { // '{'
            j += 1
            while true {
                while j < end && Parser.isBlank(buf[j]) { j += 1 }
                guard j < end else {
                    throw err("malformed sample \(text(start, nameEnd)): the label set is not closed with }")
                }
                if buf[j] == 0x7D { j += 1; break } // '}'
                let ln = j
                guard Parser.isLabelStart(buf[j]) else {
                    throw err("malformed sample \(text(start, nameEnd)): expected a label name, found \(found(j, end))")
                }
                while j < end && Parser.isLabelChar(buf[j]) { j += 1 }
                let lnEnd = j
                while j < end && Parser.isBlank(buf[j]) { j += 1 }
                guard j < end && buf[j] == 0x3D else { // '='
                    throw err(
                        "malformed sample \(text(start, nameEnd)): expected = after label \(text(ln, lnEnd)), found \(found(j, end))"
                    )
                }
                j += 1
                while j < end && Parser.isBlank(buf[j]) { j += 1 }
                guard j < end && buf[j] == 0x22 else { // '"'
                    throw err(
                        "malformed sample \(text(start, nameEnd)): expected a quoted value for label \(text(ln, lnEnd)), found \(found(j, end))"
                    )
                }
                j += 1
                let vs = j
                var escaped = false
                while j < end && buf[j] != 0x22 {
                    if buf[j] == 0x5C { escaped = true; j += 1 }
                    j += 1
                }
                guard j < end else {
                    throw err(
                        "malformed sample \(text(start, nameEnd)): the value of label \(text(ln, lnEnd)) is not closed with \""
                    )
                }
                let ve = j
                j += 1
                if keepIt {
                    let value = try labelValue(vs, ve, escaped: escaped, label: ln, lnEnd, metric: start, nameEnd)
                    labels.append(PromLabel(interned(ln, lnEnd), value))
                }
                while j < end && Parser.isBlank(buf[j]) { j += 1 }
                guard j < end else {
                    throw err("malformed sample \(text(start, nameEnd)): the label set is not closed with }")
                }
                if buf[j] == 0x2C { j += 1; continue } // ','
                if buf[j] == 0x7D { j += 1; break }
                throw err(
                    "malformed sample \(text(start, nameEnd)): expected , or } after label \(text(ln, lnEnd)), found \(found(j, end))"
                )
            }
        } else {
            j = afterName
        }
        let beforeValue = j
        while j < end && Parser.isBlank(buf[j]) { j += 1 }
        if j == end {
            throw err("malformed sample \(text(start, nameEnd)): no value")
        }
        if j == beforeValue && j < end {
            throw err("malformed sample \(text(start, nameEnd)): unexpected \(found(j, end)) after the metric name")
        }
        let vs = j
        while j < end && !Parser.isBlank(buf[j]) { j += 1 }
        guard let value = Parser.parseFloat(buf, vs, j) else {
            throw err("malformed sample \(text(start, nameEnd)): \(found(vs, j)) is not a number")
        }
        while j < end && Parser.isBlank(buf[j]) { j += 1 }
        var timestamp: Int64?
        if j < end {
            let ts = j
            while j < end && !Parser.isBlank(buf[j]) { j += 1 }
            guard let t = Parser.parseInt(buf, ts, j) else {
                throw err(
                    "malformed sample \(text(start, nameEnd)): \(found(ts, j)) is not a timestamp in milliseconds")
            }
            timestamp = t
            while j < end && Parser.isBlank(buf[j]) { j += 1 }
            if j < end {
                throw err("malformed sample \(text(start, nameEnd)): unexpected \(found(j, end)) after the timestamp")
            }
        }
        if keepIt {
            samples.append(PromSample(name: name, labels: labels, value: value, timestamp: timestamp))
        }
    }

    mutating func labelValue(
        _ vs: Int, _ ve: Int, escaped: Bool, label ln: Int, _ lnEnd: Int,
        metric ms: Int, _ me: Int
    ) throws(ExpositionError) -> String {
        let raw = UnsafeBufferPointer(rebasing: buf[vs..<ve])
        var ascii = true
        for b in raw where b >= 0x80 { ascii = false; break }
        if !escaped {
            if ascii { return interned(vs, ve) }
            guard let s = String(validating: raw, as: UTF8.self) else {
                throw err("label \(text(ln, lnEnd)) of \(text(ms, me)) is not valid UTF-8")
            }
            return s
        }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var k = 0
        while k < raw.count {
            let c = raw[k]
            if c == 0x5C && k + 1 < raw.count {
                switch raw[k + 1] {
                case 0x5C: out.append(0x5C)
                case 0x22: out.append(0x22)
                case 0x6E: out.append(0x0A)
                default:
                    throw err(
                        "label \(text(ln, lnEnd)) of \(text(ms, me)) has an invalid escape \\\(String(UnicodeScalar(raw[k + 1])))"
                    )
                }
                k += 2
            } else {
                out.append(c)
                k += 1
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else {
            throw err("label \(text(ln, lnEnd)) of \(text(ms, me)) is not valid UTF-8")
        }
        return s
    }

    static let powersOf10: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
        1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]

    /// Decimal numbers take an exact fast path (mantissa below 2^53, power of ten up to 22: one correctly rounded
    /// operation); everything else (long mantissas, `NaN`, `Inf`, hex) goes through the standard library.
    static func parseFloat(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Double? {
        guard start < end else { return nil }
        var k = start
        var negative = false
        if b[k] == 0x2D { negative = true; k += 1 } else if b[k] == 0x2B { k += 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var exp10 = 0
        var sawDigit = false
        while k < end, b[k] >= 0x30, b[k] <= 0x39 {
            sawDigit = true
            if mantissa == 0 && b[k] == 0x30 { k += 1; continue }
            if digits < 19 { mantissa = mantissa * 10 + UInt64(b[k] - 0x30); digits += 1 } else { exp10 += 1 }
            k += 1
        }
        if k < end && b[k] == 0x2E {
            k += 1
            while k < end, b[k] >= 0x30, b[k] <= 0x39 {
                sawDigit = true
                if mantissa == 0 && b[k] == 0x30 { exp10 -= 1; k += 1; continue }
                if digits < 19 { mantissa = mantissa * 10 + UInt64(b[k] - 0x30); digits += 1; exp10 -= 1 }
                k += 1
            }
        }
        if sawDigit && k < end && (b[k] == 0x65 || b[k] == 0x45) {
            k += 1
            var eneg = false
            if k < end && (b[k] == 0x2D || b[k] == 0x2B) { eneg = b[k] == 0x2D; k += 1 }
            var e = 0
            var edigits = 0
            while k < end, b[k] >= 0x30, b[k] <= 0x39 {
                if e < 100_000 { e = e * 10 + Int(b[k] - 0x30) }
                edigits += 1
                k += 1
            }
            if edigits == 0 { return nil }
            exp10 += eneg ? -e : e
        }
        if sawDigit && k == end && digits < 19 {
            if mantissa == 0 { return negative ? -0.0 : 0 }
            if mantissa < (1 << 53) && exp10 >= -22 && exp10 <= 22 {
                let m = Double(mantissa)
                let v = exp10 >= 0 ? m * powersOf10[exp10] : m / powersOf10[-exp10]
                return negative ? -v : v
            }
        }
        // Slow path: the standard library's correctly rounded conversion, and the special values.
        let s = String(decoding: UnsafeBufferPointer(rebasing: b[start..<end]), as: UTF8.self)
        if let v = Double(s) { return v }
        switch s.lowercased() {
        case "+inf", "inf", "+infinity", "infinity": return .infinity
        case "-inf", "-infinity": return -.infinity
        case "nan", "+nan", "-nan": return .nan
        default: return nil
        }
    }

    static func parseInt(_ b: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Int64? {
        var k = start
        var negative = false
        if k < end && (b[k] == 0x2D || b[k] == 0x2B) { negative = b[k] == 0x2D; k += 1 }
        guard k < end, end - k <= 18 else { return nil }
        var v: Int64 = 0
        while k < end {
            guard b[k] >= 0x30 && b[k] <= 0x39 else { return nil }
            v = v * 10 + Int64(b[k] - 0x30)
            k += 1
        }
        return negative ? -v : v
    }
}
