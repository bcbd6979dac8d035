import Testing
import RollbackCore
import RollbackSystem
import TestSupport

@Suite struct ConfigFileTests {
    @Test func loadsTheShippedTable() throws {
        let loaded = try ConfigFile.load(path: RepoPaths.root + "/thresholds.json").get()
        #expect(loaded.thresholds.triggers.count == 8)
        #expect(loaded.warnings.isEmpty, "\(loaded.warningLines)")
    }

    @Test func namesTheFileWhenUnreadable() {
        guard case let .failure(error) = ConfigFile.load(path: "/nonexistent/thresholds.json") else {
            Issue.record("loaded a missing file")
            return
        }
        #expect(error.description.hasPrefix("/nonexistent/thresholds.json: cannot read"))
    }
}
