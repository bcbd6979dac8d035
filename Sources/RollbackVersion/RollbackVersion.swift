/// rollbackd's version, one value for every place that shows it: `rollbackd --version`, `status`, the webhook
/// payload, incident reports, the HTTP `User-Agent` and the journal. `current` is generated at build time by the
/// VersionStamp plugin (`tools/version.sh`).
public enum RollbackVersion {
    /// `rollbackd/VERSION`: the HTTP `User-Agent` and the webhook payload's `data.agent`.
    public static var agent: String { "rollbackd/" + current }
}
