#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import Synchronization

/// Only one rollback at a time: an exclusive `flock` on `<state directory>/rollback.lock`, held from the gates
/// through verification. The kernel drops the lock when the holder exits or crashes, so a stale lock never blocks
/// the next rollback; the file itself stays (removing lock files races with the next taker) and holds a line
/// about the current holder for the message others get.
public final class RollbackLock: Sendable {
    public static let fileName = "rollback.lock"

    public let path: String
    /// The holder description written into the file.
    public let holder: String
    private let fd: Mutex<Int32>

    private init(path: String, holder: String, fd: Int32) {
        self.path = path
        self.holder = holder
        self.fd = Mutex(fd)
    }

    public struct Busy: Error, Sendable, CustomStringConvertible {
        public var path: String
        /// What the holder wrote (pid, incident, since), when readable.
        public var heldBy: String
        public var description: String {
            "another rollback is in progress (\(path) is locked\(heldBy.isEmpty ? "" : " by \(heldBy)"))"
        }
    }

    public enum AcquireError: Error, Sendable, CustomStringConvertible {
        case busy(Busy)
        case system(SystemError)
        public var description: String {
            switch self {
            case let .busy(b): return b.description
            case let .system(e): return "cannot take the rollback lock: \(e.description)"
            }
        }
    }

    /// Takes the lock without waiting; `holder` (e.g. `incident 20261122-… 1.4.2 -> 1.4.1`) is recorded with the
    /// pid and time.
    public static func acquire(
        stateDirectory: String, holder: String,
        at now: Timestamp? = nil
    ) throws(AcquireError) -> RollbackLock {
        do {
            try FileIO.makeDirectories(stateDirectory, mode: 0o750)
        } catch {
            throw .system(error)
        }
        let path = stateDirectory + "/" + fileName
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw .system(SystemError("open", path: path)) }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            let code = errno
            var text = ""
            if code == EWOULDBLOCK, let bytes = try? FileIO.readAll(path: path, limit: 4096) {
                text = String(decoding: bytes, as: UTF8.self).split(separator: "\n").joined(separator: ", ")
            }
            close(fd)
            if code == EWOULDBLOCK { throw .busy(Busy(path: path, heldBy: text)) }
            throw .system(SystemError("flock", path: path, code: code))
        }
        let when = (now ?? SystemTime().now()).iso8601
        let line = Array("pid \(getpid())\n\(holder)\nsince \(when)\n".utf8)
        _ = ftruncate(fd, 0)
        _ = line.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        _ = fsync(fd)
        return RollbackLock(path: path, holder: holder, fd: fd)
    }

    public var isHeld: Bool { fd.withLock { $0 >= 0 } }

    /// Releases the lock (idempotent). Also done when the object goes away.
    public func release() {
        fd.withLock { fd in
            guard fd >= 0 else { return }
            _ = ftruncate(fd, 0)
            _ = flock(fd, LOCK_UN)
            close(fd)
            fd = -1
        }
    }

    deinit { release() }
}
