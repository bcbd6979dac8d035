#if canImport(Glibc)
import Glibc
#endif
import RollbackCore

/// Keeps copies of files an executor is about to overwrite, so a failed validation can put them back.
struct SavedCopies {
    let directory: String

    init(stateDirectory: String, strategy: String, plan: RollbackPlan) {
        directory =
            "\(stateDirectory)/executor/\(strategy)-prev/\(Paths.sanitized(plan.incident))-\(Paths.sanitized(plan.to))"
    }

    func copyPath(index: Int, of file: String) -> String {
        "\(directory)/\(index)-\(Paths.sanitized(file.split(separator: "/").last.map(String.init) ?? file))"
    }

    /// Saves `file` (when it exists and no copy was saved yet: a re-run after a crash keeps the first copy).
    func save(index: Int, of file: String, strategy: String) throws(ExecutorError) {
        let copy = copyPath(index: index, of: file)
        guard !Paths.exists(copy) else { return }
        do {
            try FileIO.makeDirectories(directory, mode: 0o700)
            if Paths.exists(file) {
                let bytes = try FileIO.readAll(path: file)
                try FileIO.writeAtomically(path: copy, bytes: bytes, mode: 0o600)
            } else {
                // Remember that the file did not exist.
                try FileIO.writeAtomically(path: copy + ".absent", bytes: [], mode: 0o600)
                try FileIO.writeAtomically(path: copy, bytes: [], mode: 0o600)
            }
        } catch {
            throw ExecutorError(strategy, "cannot keep a copy of \(file) before changing it: \(error.description)")
        }
    }

    /// Forgets copies kept for `plan` by any strategy (a fresh attempt starts from the live files as they are).
    static func discard(stateDirectory: String, plan: RollbackPlan) {
        // The steps of a plan keep theirs apart, in step-<n> (PlanExecutor.stateDirectory).
        for dir in [stateDirectory]
            + plan.steps.indices.map({ PlanExecutor.stateDirectory(of: $0, in: stateDirectory) })
        {
            discard(in: dir, plan: plan)
        }
    }

    private static func discard(in stateDirectory: String, plan: RollbackPlan) {
        let base = "\(stateDirectory)/executor"
        guard let kinds = try? Paths.list(base) else { return }
        for kind in kinds where kind.hasSuffix("-prev") {
            let dir = "\(base)/\(kind)/\(Paths.sanitized(plan.incident))-\(Paths.sanitized(plan.to))"
            guard let names = try? Paths.list(dir) else { continue }
            for n in names { unlink("\(dir)/\(n)") }
            rmdir(dir)
        }
    }

    /// Puts saved copies back. Returns the files restored.
    func restore(_ files: [String], strategy: String) throws(ExecutorError) -> [String] {
        var restored: [String] = []
        for (i, file) in files.enumerated() {
            let copy = copyPath(index: i, of: file)
            guard Paths.exists(copy) else { continue }
            do throws(SystemError) {
                if Paths.exists(copy + ".absent") {
                    if unlink(file) != 0 && errno != ENOENT { throw SystemError("unlink", path: file) }
                } else {
                    let bytes = try FileIO.readAll(path: copy)
                    try FileIO.writeAtomically(path: file, bytes: bytes, mode: Paths.mode(file) ?? 0o644)
                }
                restored.append(file)
            } catch {
                throw ExecutorError(strategy, "cannot restore \(file) from \(copy): \(error.description)")
            }
        }
        return restored
    }
}
