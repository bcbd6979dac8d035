#if canImport(Glibc)
import Glibc
#endif

/// An errno-based error naming the path and the operation.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var path: String
    public var code: Int32
    public init(_ operation: String, path: String, code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }
    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(code)))"
    }
}

/// Small, explicit file helpers over POSIX calls (no Foundation needed).
public enum FileIO {
    /// Reads a whole file, failing when it is larger than `limit` bytes.
    public static func readAll(path: String, limit: Int = 64 << 20) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError("open", path: path) }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError("read", path: path)
            }
            if n == 0 { break }
            out.append(contentsOf: buffer[0..<n])
            if out.count > limit { throw SystemError("read", path: path, code: EFBIG) }
        }
        return out
    }

    /// Writes a file that matters: temp file in the same directory, fsync, rename over the target, fsync the
    /// directory. Readers see the old content or the new, never a mix.
    public static func writeAtomically(path: String, bytes: [UInt8], mode: mode_t = 0o600) throws(SystemError) {
        let tmp = "\(path).tmp.\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError("create", path: tmp) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = SystemError("write", path: tmp)
                close(fd)
                unlink(tmp)
                throw e
            }
            offset += n
        }
        if fsync(fd) != 0 {
            let e = SystemError("fsync", path: tmp)
            close(fd)
            unlink(tmp)
            throw e
        }
        close(fd)
        if rename(tmp, path) != 0 {
            let e = SystemError("rename", path: path)
            unlink(tmp)
            throw e
        }
        syncDirectory(of: path)
    }

    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let d = String(path[..<slash])
        return d.isEmpty ? "/" : d
    }

    /// mkdir -p with the given mode for directories it creates.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o750) throws(SystemError) {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", path: current) }
        }
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// Points the symbolic link `link` at `target` atomically: a new link at `temp` (a leftover one is replaced)
    /// renamed over `link`, so a reader resolving `link` sees the old target or the new, never nothing; then the
    /// directory is synced. On failure the old link is unchanged and `temp` is gone.
    public static func replaceSymlink(_ link: String, target: String, temp: String) throws(SystemError) {
        if unlink(temp) != 0 && errno != ENOENT { throw SystemError("unlink", path: temp) }
        guard symlink(target, temp) == 0 else { throw SystemError("symlink", path: temp) }
        guard rename(temp, link) == 0 else {
            let e = SystemError("rename", path: link)
            unlink(temp)
            throw e
        }
        syncDirectory(of: link)
    }

    /// fsync of the directory holding `path`, so a rename or a new entry in it survives a crash.
    public static func syncDirectory(of path: String) {
        let dfd = open(directory(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Removes a directory tree, or a single file; symbolic links are removed, never followed.
    public static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            unlink(path)
            return
        }
        if let d = opendir(path) {
            var names: [String] = []
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) {
                    String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(d)
            for n in names { removeTree(path + "/" + n) }
        }
        rmdir(path)
    }
}

/// Writing to the terminal without Foundation.
public enum Terminal {
    public static func writeError(_ text: String) {
        let line = text.hasSuffix("\n") ? text : text + "\n"
        var bytes = Array(line.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { if errno == EINTR { continue }; return }
            offset += n
        }
    }
}
