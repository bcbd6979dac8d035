#!/usr/bin/env python3
"""Sampling benchmarks (issue 3). Not run by `make test`.

    python3 Benchmarks/sampling/run.py [--targets 1000] [--ticks 10] [--mb 10]

1. Probing N loopback targets (N ports of one asyncio server) in one tick, through the real Sampler and libcurl
   multi client: tick wall times (goal for 1,000 targets: under 1 s on the 2-core machine).
2. Parsing a ~10 MB Prometheus text exposition produced by prometheus_client: rollbackd's parser (full, and keeping
   only the two families a scrape metric reads) side by side with prometheus_client's own text parser on the same
   file (goal: at least 10x faster), each in its own process, with its peak RSS.

Builds the release benchmark binary first (swift build -c release --product rollbackd-bench).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "Benchmarks", "sampling")


def run_measured(argv):
    """Runs argv, returns (stdout, wall seconds, ru_maxrss MiB — inflated by this process's own size at fork, so
    peak memory is read from the child's own VmHWM instead)."""
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    if status != 0:
        sys.exit(f"{argv[0]} failed ({status}): {err.decode()}")
    return out.decode(), wall, usage.ru_maxrss / 1024


def make_exposition(path, megabytes):
    """A realistic exposition from prometheus_client: request counters and latency histograms per handler."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    reg = CollectorRegistry()
    requests = Counter("http_requests_total", "Requests served.", ["handler", "method", "code"], registry=reg)
    latency = Histogram("http_request_duration_seconds", "Request latency.", ["handler", "method"], registry=reg)
    handler = 0
    size = 0
    while size < megabytes * 1_000_000:
        for _ in range(200):
            h = f"/api/v1/resource{handler}/items"
            for m in ("GET", "POST"):
                for code in ("200", "201", "404", "500"):
                    requests.labels(h, m, code).inc(handler * 7 + len(code))
                latency.labels(h, m).observe((handler % 50) / 100)
            handler += 1
        size = len(generate_latest(reg))
    data = generate_latest(reg)
    with open(path, "wb") as f:
        f.write(data)
    return len(data), data.count(b"\n")


PY_PARSE = """
import sys, time
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
best = float("inf")
for _ in range(int(sys.argv[2])):
    start = time.monotonic()
    n = sum(len(f.samples) for f in text_string_to_metric_families(text))
    best = min(best, time.monotonic() - start)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(f"{best} {n} {int(hwm) / 1024}")
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=1000)
    ap.add_argument("--ticks", type=int, default=10)
    ap.add_argument("--mb", type=float, default=10)
    args = ap.parse_args()

    subprocess.run(["swift", "build", "-c", "release", "--product", "rollbackd-bench"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    bench = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.strip() + "/rollbackd-bench"

    with tempfile.TemporaryDirectory() as tmp:
        # 1. Probe N targets.
        urls = os.path.join(tmp, "urls.txt")
        server = subprocess.Popen([sys.executable, os.path.join(HERE, "many_targets.py"), str(args.targets), urls],
                                  stdout=subprocess.PIPE, text=True)
        line = server.stdout.readline()
        if not line.startswith("READY"):
            sys.exit("the target server did not start")
        try:
            out, _, _ = run_measured([bench, "probe", urls, "--ticks", str(args.ticks)])
            print(out, end="")
        finally:
            server.terminate()
            server.wait()

        # 2. Parse a ~10 MB exposition.
        expo = os.path.join(tmp, "metrics.txt")
        size, lines = make_exposition(expo, args.mb)
        import importlib.metadata
        print(f"\nexposition: {size} bytes, {lines} lines, made by prometheus_client "
              f"{importlib.metadata.version('prometheus-client')}")
        # Timing: best of several runs in one process. Peak memory: a separate single-run process each, so the
        # figure is what one parse of the file needs (file bytes included), not allocator leftovers of repeats.
        out, _, _ = run_measured([sys.executable, "-c", PY_PARSE, expo, "3"])
        py_best, py_samples = float(out.split()[0]), int(out.split()[1])
        out, _, _ = run_measured([sys.executable, "-c", PY_PARSE, expo, "1"])
        py_rss = float(out.split()[2])
        print(f"prometheus_client parser: best of 3 {py_best:.3f} s ({size / 1e6 / py_best:.1f} MB/s), "
              f"{py_samples} samples, peak RSS {py_rss:.1f} MiB")
        for label, keep in (("every sample", []),
                            ("only http_requests_total kept", ["--keep", "http_requests_total"])):
            out, _, _ = run_measured([bench, "parse", expo, "--repeat", "5"] + keep)
            best = float(out.split("best of 5: ")[1].split(" s")[0])
            samples = out.split(" samples kept")[0].split(", ")[-1]
            out, _, _ = run_measured([bench, "parse", expo, "--repeat", "1"] + keep)
            rss = float(out.split("peak RSS ")[1].split(" MiB")[0])
            print(f"rollbackd parser, {label}: best of 5 {best:.3f} s ({size / 1e6 / best:.1f} MB/s), {samples} samples, "
                  f"peak RSS {rss:.1f} MiB, {py_best / best:.1f}x faster")


if __name__ == "__main__":
    main()
