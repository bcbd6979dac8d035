/// The one error type of the tests' own making: a process that did not run, a file that did not parse, a state
/// that was not reached in time. Its description is the whole reason, so a failed `try` reads as the cause.
public struct TestFailure: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
