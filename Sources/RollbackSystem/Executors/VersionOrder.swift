#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// Orders version strings the way people read them: digit runs compare as numbers (`v1.10` after `v1.9`).
public enum VersionOrder {
    public static func less(_ a: String, _ b: String) -> Bool {
        var i = a.unicodeScalars.makeIterator(), j = b.unicodeScalars.makeIterator()
        var x = i.next(), y = j.next()
        while let cx = x, let cy = y {
            let dx = cx.properties.numericType != nil && cx.isASCII, dy = cy.properties.numericType != nil && cy.isASCII
            if dx && dy {
                var na = "", nb = ""
                while let c = x, c.isASCII, c.properties.numericType != nil {
                    na.unicodeScalars.append(c); x = i.next()
                }
                while let c = y, c.isASCII, c.properties.numericType != nil {
                    nb.unicodeScalars.append(c); y = j.next()
                }
                let ta = na.drop { $0 == "0" }, tb = nb.drop { $0 == "0" }
                if ta.count != tb.count { return ta.count < tb.count }
                if ta != tb { return ta < tb }
                continue
            }
            if cx != cy { return cx.value < cy.value }
            x = i.next(); y = j.next()
        }
        return x == nil && y != nil
    }

    /// Newest first.
    public static func newestFirst(_ versions: [String]) -> [String] { versions.sorted { less($1, $0) } }
}
