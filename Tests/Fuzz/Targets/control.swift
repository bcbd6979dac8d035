// fuzz-sources: Sources/RollbackService/Control/ControlRequest.swift
import RollbackCore

/// The control socket's request handling short of the socket (RollbackService's `ControlRequest`, compiled into this
/// target): any bytes as a request line, parsed to a command, and every command that parses run on an engine with a
/// known-good v1, a live v2 and a rollback awaiting approval (incident `INC-20270115T080015Z-v2`), as
/// `ControlHandler` runs it on the daemon's. Each answer is a refusal or a message; no input crashes the engine.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControl(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = Array(UnsafeBufferPointer(start: data, count: size))
    guard case let .success(command) = ControlRequest.parse(line: line) else { return 0 }
    var engine = ControlFuzz.engine
    let now = ControlFuzz.now
    do {
        let out = try command.apply(to: &engine, by: "uid 1000", now: now)
        precondition(!command.message(out).isEmpty)
        // What a daemon does next: the next tick on the engine the command left.
        _ = engine.tick(Observation(at: now + .seconds(1), samples: ["errors": .value(0.5)], version: "v2"))
    } catch {
        precondition(!error.message.isEmpty)
    }
    return 0
}

enum ControlFuzz {
    static let now = Timestamp(millisecondsSinceEpoch: 1_800_000_030_000)

    /// v1 known-good, v2 live and failing, its rollback waiting for approval.
    static let engine: Engine = {
        let text = """
            {"service": "fuzz", "interval": "5s",
             "metrics": {"errors": {"type": "command", "argv": ["/bin/true"]}},
             "triggers": [{"name": "t", "metric": "errors", "condition": {"above": 0.1}, "breaches": 1, "clears": 1,
                           "severity": "critical", "respondWithin": "5m", "automation": "semi"}],
             "rollback": {"strategy": "command", "command": {"argv": ["/bin/true"]}},
             "safety": {"cooldown": "0s", "soak": "1s", "deployWindow": "1h"}}
            """
        guard let config = try? Thresholds.load(text: text, file: "fuzz.json").thresholds else {
            fatalError("the fuzz table does not load")
        }
        var engine = Engine(config: config)
        var t = Timestamp(millisecondsSinceEpoch: 1_800_000_000_000)
        for _ in 0..<3 {
            _ = engine.tick(Observation(at: t, samples: ["errors": .value(0)], version: "v1"))
            t = t + .seconds(5)
        }
        guard (try? engine.markKnownGood("v1", by: "fuzz", now: t)) != nil else { fatalError("v1 was not seen live") }
        for _ in 0..<2 {
            _ = engine.tick(Observation(at: t, samples: ["errors": .value(0.5)], version: "v2"))
            t = t + .seconds(5)
        }
        precondition(!engine.state.approvals.isEmpty, "the fuzz engine has no pending approval")
        return engine
    }()
}
