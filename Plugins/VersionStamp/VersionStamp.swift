import Foundation
import PackagePlugin

/// Writes `RollbackVersion.current` before every build from `tools/version.sh` (`git describe`, or CHANGELOG.md's
/// version in a tarball). A prebuild command runs on every build, so a new commit or tag is never missed; the
/// script rewrites the file only when the version changed.
@main
struct VersionStamp: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "Generated")
        let script = context.package.directoryURL.appending(path: "tools/version.sh")
        return [
            .prebuildCommand(
                displayName: "Stamping the rollbackd version (tools/version.sh)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [script.path, "--swift", output.appending(path: "RollbackVersion+Current.swift").path],
                outputFilesDirectory: output)
        ]
    }
}
