/// Percent-encodes a query-string value (everything but RFC 3986 unreserved characters).
public func percentEncode(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    let hex = Array("0123456789ABCDEF".utf8)
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
            UInt8(ascii: "~"):
            out.unicodeScalars.append(UnicodeScalar(b))
        default:
            out.unicodeScalars.append("%")
            out.unicodeScalars.append(UnicodeScalar(hex[Int(b >> 4)]))
            out.unicodeScalars.append(UnicodeScalar(hex[Int(b & 0xF)]))
        }
    }
    return out
}
