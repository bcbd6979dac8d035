/// The result of one safety gate, kept for the incident report.
public struct GateResult: Sendable, Equatable, Codable {
    /// `automation`, `dry_run`, `deploy_window`, `target`, `cooldown`, `budget`, … (stable names).
    public var gate: String
    public var passed: Bool
    public var detail: String
    public init(gate: String, passed: Bool, detail: String) {
        self.gate = gate
        self.passed = passed
        self.detail = detail
    }
}
