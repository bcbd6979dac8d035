#if canImport(Glibc)
import Glibc
#endif
// A plain target, so `swift build` (release, `make install`) compiles it too, where Testing is not available.
#if canImport(Testing)
import Testing
#endif
import RollbackSystem

/// A fresh directory under /tmp for one test: `let dir = try ScratchDir("label"); defer { dir.remove() }`.
/// Removal is explicit (not on deinit): a directory must not vanish because the optimizer ended its owner's life
/// early while a path into it is still in use.
public final class ScratchDir: Sendable {
    public let path: String

    public init(_ label: String = "test") throws {
        var template = Array("/tmp/rollbackd-\(label)-XXXXXX".utf8CString)
        guard let p = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestFailure("mkdtemp /tmp/rollbackd-\(label)-XXXXXX: \(String(cString: strerror(errno)))")
        }
        path = String(cString: p)
        chmod(path, 0o755)
    }

    public func remove() { FileIO.removeTree(path) }

    /// `path/name`.
    public func sub(_ name: String) -> String { path + "/" + name }

    @discardableResult
    public func mkdirs(_ name: String) -> String {
        let p = sub(name)
        try? FileIO.makeDirectories(p, mode: 0o755)
        return p
    }

    /// Writes `name` (creating its directories) and returns its path; a failure is recorded as a test issue.
    @discardableResult
    public func write(_ name: String, _ text: String, mode: mode_t = 0o644) -> String {
        let p = sub(name)
        try? FileIO.makeDirectories(FileIO.directory(of: p), mode: 0o755)
        do {
            try FileIO.writeAtomically(path: p, bytes: Array(text.utf8), mode: mode)
        } catch {
            #if canImport(Testing)
            Issue.record("cannot write \(p): \(error)")
            #else
            Terminal.writeError("cannot write \(p): \(error)")
            #endif
        }
        chmod(p, mode)
        return p
    }

    /// A shell script (the test's own helper; the executors never use a shell).
    @discardableResult
    public func script(_ name: String, _ body: String) -> String {
        write(name, "#!/bin/sh\n" + body + "\n", mode: 0o755)
    }
}

/// Reading what processes left on disk.
public enum TestFiles {
    /// The file's text, or nil when it cannot be read (not there yet, say).
    public static func read(_ path: String) -> String? {
        (try? FileIO.readAll(path: path)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The file's text; a file that cannot be read fails the test with the reason.
    public static func text(_ path: String) throws -> String {
        do {
            return String(decoding: try FileIO.readAll(path: path), as: UTF8.self)
        } catch {
            throw TestFailure(error.description)
        }
    }

    /// The names in a directory (not `.` and `..`), sorted; empty when it cannot be read.
    public static func list(_ directory: String) -> [String] {
        guard let d = opendir(directory) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// A symbolic link's target, or nil when `path` is not a link.
    public static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buf, buf.count - 1)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Every file, directory and link under `root`: path → mode and content (or link target). Equal snapshots mean
    /// nothing changed (stronger than comparing hashes).
    public static func snapshot(_ root: String) -> [String: String] {
        var out: [String: String] = [:]
        func walk(_ dir: String) {
            for n in list(dir) {
                let p = dir + "/" + n
                var st = stat()
                guard lstat(p, &st) == 0 else { continue }
                let mode = String(st.st_mode, radix: 8)
                switch st.st_mode & S_IFMT {
                case S_IFLNK: out[p] = "link \(mode) -> \(readLink(p) ?? "?")"
                case S_IFDIR: out[p] = "dir \(mode)"; walk(p)
                default: out[p] = "file \(mode) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) fnv \(fnv(read(p) ?? ""))"
                }
            }
        }
        walk(root)
        return out
    }

    /// FNV-1a 64: a content hash for snapshots.
    public static func fnv(_ s: String) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs and line breaks.
    public var trimmed: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
