#if canImport(Glibc)
import Glibc
#endif

/// Identity of a file's content for change detection (inode, size, mtime).
struct FileStamp: Equatable {
    var inode: UInt64
    var size: Int64
    var mtimeNs: Int64

    init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        inode = UInt64(st.st_ino)
        size = Int64(st.st_size)
        mtimeNs = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
    }
}

/// Editing thresholds.json changes what the daemon may do to production: only root or the service user may.
public enum ConfigPermissions {
    public static func problem(path: String) -> String? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil } // the loader names a missing file
        if st.st_mode & (S_IWGRP | S_IWOTH) != 0 {
            return
                "\(path): refusing a configuration writable by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); run chmod go-w \(path)"
        }
        if st.st_uid != 0 && st.st_uid != getuid() {
            return
                "\(path): refusing a configuration owned by uid \(st.st_uid); it must belong to root or the service user (uid \(getuid()))"
        }
        return nil
    }
}
