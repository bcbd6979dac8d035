// rollbackd-bench: the sampling benchmarks (not run by `make test`; see Benchmarks/sampling/run.py).
//
//   rollbackd-bench parse FILE [--repeat N] [--keep NAME]...   parse a text exposition, print seconds and MB/s
//   rollbackd-bench probe URLS_FILE [--ticks N] [--timeout 2s]  probe every URL once per tick, print tick times
#if canImport(Glibc)
import Glibc
#endif
import RollbackCore
import RollbackSystem

func monotonic() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// The peak resident set of this process image (VmHWM): unlike getrusage's ru_maxrss it does not carry over the
/// high-water mark of the process that forked us.
func peakRSSMiB() -> Double {
    guard let bytes = try? FileIO.readAll(path: "/proc/self/status") else { return -1 }
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? -1
        return kb / 1024
    }
    return -1
}

func currentRSSMiB() -> Double {
    guard let bytes = try? FileIO.readAll(path: "/proc/self/status") else { return -1 }
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return (line.split(separator: " ").compactMap { Double($0) }.first ?? -1) / 1024
    }
    return -1
}

func openFDs() -> Int {
    guard let d = opendir("/proc/self/fd") else { return -1 }
    defer { closedir(d) }
    var n = -2
    while readdir(d) != nil { n += 1 }
    return n
}

func option(_ name: String, in args: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < args.count {
        if args[i] == name, i + 1 < args.count { out.append(args[i + 1]); i += 2 } else { i += 1 }
    }
    return out
}

func fail(_ message: String) -> Never {
    Terminal.writeError("rollbackd-bench: \(message)")
    exit(2)
}

let args = Array(CommandLine.arguments.dropFirst())
guard let command = args.first, args.count >= 2 else {
    fail("usage: rollbackd-bench parse FILE [--repeat N] [--keep NAME]... | probe URLS_FILE [--ticks N] [--timeout 2s]")
}

switch command {
case "parse":
    let path = args[1]
    let repeats = Int(option("--repeat", in: args).first ?? "5") ?? 5
    let keep = option("--keep", in: args)
    let bytes: [UInt8]
    do { bytes = try FileIO.readAll(path: path, limit: 1 << 30) } catch { fail(error.description) }
    var best = Double.infinity
    var samples = 0
    for _ in 0..<repeats {
        let start = monotonic()
        do {
            let e = try ExpositionParser.parse(bytes, keeping: keep.isEmpty ? nil : Set(keep))
            samples = e.samples.count
        } catch {
            fail("\(path): \(error)")
        }
        best = min(best, monotonic() - start)
    }
    let mb = Double(bytes.count) / 1e6
    print(
        "parse \(path): \(bytes.count) bytes, \(samples) samples kept, best of \(repeats): \(best) s, \(mb / best) MB/s, peak RSS \(peakRSSMiB()) MiB"
    )

case "probe":
    let urls: [String]
    do {
        urls = String(decoding: try FileIO.readAll(path: args[1]), as: UTF8.self).split(separator: "\n").map(
            String.init)
    } catch { fail(error.description) }
    let ticks = Int(option("--ticks", in: args).first ?? "5") ?? 5
    let timeout = option("--timeout", in: args).first ?? "2s"
    // The real path: a thresholds.json with one probe metric over every URL, loaded and sampled by the Sampler.
    let list = urls.map { JSONValue.quote($0) }.joined(separator: ",")
    let text = """
        {"service": "bench", "interval": "5s",
         "metrics": {"health": {"type": "probe", "targets": [\(list)], "measure": "unhealthyRatio", "timeout": "\(timeout)"}},
         "triggers": [{"name": "t", "metric": "health", "condition": {"above": 0.3}, "severity": "critical",
                       "respondWithin": "2m", "automation": "manual"}],
         "rollback": {"strategy": "command", "command": {"argv": ["/bin/true"]}}}
        """
    let thresholds: Thresholds
    do { thresholds = try Thresholds.load(text: text, file: "bench.json").thresholds } catch { fail(error.description) }
    let sampler = Sampler(thresholds: thresholds)
    var times: [Double] = []
    for tick in 1...ticks {
        let start = monotonic()
        let result = await sampler.tick(now: SystemTime.now())
        let took = monotonic() - start
        times.append(took)
        let shown =
            result.samples["health"].map { $0.number.map { "unhealthy ratio \($0)" } ?? "no data: \($0.reason ?? "")" }
            ?? "-"
        if tick <= 10 || tick % 100 == 0 || tick == ticks {
            print(
                "probe tick \(tick): \(urls.count) targets in \(took) s, \(shown)\(result.notes["health"].map { "; \($0[0])" } ?? ""), RSS \(currentRSSMiB()) MiB, open fds \(openFDs())"
            )
        }
    }
    print(
        "probe: median tick \(times.sorted()[times.count / 2]) s, first tick \(times[0]) s, worst \(times.max() ?? 0) s"
    )
    print("peak RSS \(peakRSSMiB()) MiB")

default:
    fail("unknown command \(command)")
}
