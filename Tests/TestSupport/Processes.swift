#if canImport(Glibc)
import Glibc
#endif
import RollbackSystem

/// What /proc says about the processes on this machine.
public enum Processes {
    /// The pids whose parent is `parent` now.
    public static func children(of parent: pid_t) -> [pid_t] {
        TestFiles.list("/proc").compactMap { name in
            guard let pid = pid_t(name), let stat = try? FileIO.readAll(path: "/proc/\(pid)/stat", limit: 4096) else {
                return nil
            }
            // pid (comm) state ppid …: the comm may hold spaces, so split after the last ')'.
            let text = String(decoding: stat, as: UTF8.self)
            guard let close = text.lastIndex(of: ")") else { return nil }
            let fields = text[text.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == parent ? pid : nil
        }
    }

    /// "pid: command line" of the processes (this one aside) whose command line mentions `fragment`.
    public static func mentioning(_ fragment: String) -> [String] {
        TestFiles.list("/proc").compactMap { name in
            guard let pid = pid_t(name), pid != getpid(),
                let raw = try? FileIO.readAll(path: "/proc/\(name)/cmdline", limit: 65536)
            else { return nil }
            let cmd = String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return cmd.contains(fragment) && !cmd.contains("/proc/") ? "\(pid): \(cmd)" : nil
        }
    }
}
