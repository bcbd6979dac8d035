#!/usr/bin/env python3
"""Daemon overhead (issue 7): resident memory and CPU per tick of the real `rollbackd run` (release build)
guarding 10, 100 and 1,000 targets at a 1 s (or --interval) interval, and start-up time to READY. Not run by
`make test`.

    python3 Benchmarks/overhead/run.py [--targets 10,100,1000] [--warmup 35] [--measure 90] [--starts 5]
                                       [--interval 1s|250ms]

The targets are N loopback ports of one asyncio process (Benchmarks/sampling/many_targets.py --metrics), each
serving /healthz and the demo service's /metrics (request counter by code, latency histogram). The daemon's
table has the shape of the shipped thresholds.json for such a service: error rate (scrape, errorRatio, 30 s
window), P95 latency (scrape, quantile, 30 s window) and unhealthy ratio (probe /healthz) over `instances`, their
three triggers (the error and health triggers decide on evidence), symlink strategy; only the interval differs. So each tick is one scrape and one probe per target.

The daemon gets a NOTIFY_SOCKET owned by this script (an AF_UNIX datagram socket: the real sd_notify protocol).
- start-up to READY: from just before the process is spawned to the READY=1 datagram (sent after the
  configuration is loaded and the first tick is done), --starts times per N with a fresh state directory;
- after --warmup seconds (the 30 s windows fill), over --measure seconds: ticks = WATCHDOG=1 datagrams (one per
  completed tick); CPU = utime+stime of /proc/PID/stat (all threads); RSS = VmRSS sampled every second; the
  tick's own wall time from STATUS ("last tick N ms").
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANY = os.path.join(ROOT, "Benchmarks", "sampling", "many_targets.py")
sys.path.insert(0, os.path.join(ROOT, "Benchmarks"))
from benchlib import NotifySocket, status_kib  # noqa: E402
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROCS = []


def die_with_parent():
    import ctypes
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)


def spawn(argv, log, env=None, stdout=None):
    p = subprocess.Popen(argv, stdout=stdout or open(log, "ab"), stderr=open(log, "ab"), env=env,
                         preexec_fn=die_with_parent)
    PROCS.append(p)
    return p


def stop(p):
    if p is None or p.poll() is not None:
        return
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def rss_by_mapping(pid):
    """Resident KiB per mapped file (and anonymous memory), from /proc/PID/smaps, largest first."""
    out, name = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if not head:
                continue
            if not head[0].endswith(":") or "-" in head[0]:
                name = os.path.basename(head[5]) if len(head) > 5 and head[5].startswith("/") else "[anonymous]"
            elif head[0] == "Rss:":
                out[name] = out.get(name, 0) + int(head[1])
    return sorted(out.items(), key=lambda kv: -kv[1])


def config(instances, releases, link, interval):
    return {
        "service": "overhead", "interval": interval, "automation": "full", "instances": instances,
        "metrics": {
            "error_rate": {"type": "scrape", "path": "/metrics", "measure": "errorRatio",
                           "counter": "http_requests_total", "errorLabels": {"code": "5.."}, "window": "30s"},
            "latency_p95": {"type": "scrape", "path": "/metrics", "measure": "quantile",
                            "histogram": "http_request_duration_seconds", "quantile": 0.95, "window": "30s"},
            "unhealthy_ratio": {"type": "probe", "path": "/healthz", "measure": "unhealthyRatio", "timeout": "2s"},
        },
        "triggers": [
            {"name": "critical-error-rate", "metric": "error_rate", "condition": {"above": 0.10},
             "confidence": 0.99, "severity": "critical", "respondWithin": "2m", "automation": "full"},
            {"name": "latency-degradation", "metric": "latency_p95", "condition": {"aboveBaseline": 2.0},
             "breaches": 6, "clears": 6, "severity": "high", "respondWithin": "5m", "automation": "semi"},
            {"name": "health-check-failure", "metric": "unhealthy_ratio", "condition": {"above": 0.30},
             "confidence": 0.99, "severity": "critical", "respondWithin": "2m", "automation": "full"},
        ],
        "rollback": {"strategy": "symlink", "symlink": {"releasesDir": releases, "currentLink": link}},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="10,100,1000")
    ap.add_argument("--warmup", type=float, default=35)
    ap.add_argument("--measure", type=float, default=90)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--interval", default="1s", help="the daemon's interval (the shipped table's shape otherwise)")
    ap.add_argument("--no-build", action="store_true", help="use the existing .build/release/rollbackd")
    ap.add_argument("--dynamic", action="store_true",
                    help="build without --static-swift-stdlib (default: the binary `make release` ships)")
    args = ap.parse_args()
    binary = os.path.join(ROOT, ".build", "release", "rollbackd")
    if not args.no_build:
        build = ["swift", "build", "-c", "release", "--product", "rollbackd"] + ([] if args.dynamic else ["--static-swift-stdlib"])
        print(f"building ({' '.join(build)})", flush=True)
        if subprocess.run(build, cwd=ROOT).returncode != 0:
            sys.exit(f"{' '.join(build)} failed")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} is missing: swift build -c release")
    base = tempfile.mkdtemp(prefix="rollbackd-overhead-")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    rows = []
    try:
        os.makedirs(os.path.join(base, "releases", "v1"))
        link = os.path.join(base, "current")
        os.symlink(os.path.join(base, "releases", "v1"), link)
        notify = NotifySocket(os.path.join(base, "notify.sock"))
        env = dict(os.environ, NOTIFY_SOCKET=notify.path)
        env.pop("WATCHDOG_USEC", None)
        for n in [int(x) for x in args.targets.split(",")]:
            urls = os.path.join(base, f"urls-{n}")
            server = spawn([sys.executable, MANY, str(n), urls, "--metrics"], os.path.join(base, f"targets-{n}.log"),
                           stdout=subprocess.PIPE)
            if not server.stdout.readline().startswith(b"READY"):
                sys.exit("many_targets.py did not start")
            instances = open(urls).read().split()
            cfg = os.path.join(base, f"thresholds-{n}.json")
            with open(cfg, "w") as f:
                json.dump(config(instances, os.path.join(base, "releases"), link, args.interval), f)
            os.chmod(cfg, 0o644)

            def start(tag):
                state = os.path.join(base, f"state-{n}-{tag}")
                notify.clear()
                t = time.monotonic()
                p = spawn([binary, "run", "--config", cfg, "--state-dir", state, "--socket",
                           os.path.join(base, f"control-{n}-{tag}.sock"), "--log-target", "stderr"],
                          os.path.join(base, f"daemon-{n}-{tag}.log"), env=env)
                ready = notify.wait_for("READY=1", 60)
                if ready is None:
                    stop(p)
                    sys.exit(f"no READY=1 from rollbackd within 60 s ({n} targets); see {base}/daemon-{n}-{tag}.log")
                return p, ready - t

            startups = []
            for i in range(args.starts):
                p, s = start(f"start{i}")
                startups.append(s)
                stop(p)
            p, s = start("run")
            startups.append(s)
            time.sleep(args.warmup)
            if p.poll() is not None:
                sys.exit(f"rollbackd exited; see {base}/daemon-{n}-run.log")
            notify.clear()
            rss, anon, filebacked = [], [], []
            cpu0, t0 = cpu_seconds(p.pid), time.monotonic()
            while time.monotonic() - t0 < args.measure:
                time.sleep(1)
                rss.append(status_kib(p.pid, "VmRSS"))
                anon.append(status_kib(p.pid, "RssAnon"))
                filebacked.append(status_kib(p.pid, "RssFile"))
            cpu1, t1 = cpu_seconds(p.pid), time.monotonic()
            hwm = status_kib(p.pid, "VmHWM")
            mappings = rss_by_mapping(p.pid)
            msgs = notify.snapshot()
            ticks = sum(1 for _, m in msgs if "WATCHDOG=1" in m.split("\n"))
            tick_ms = [int(m.split("last tick ")[1].split(" ms")[0]) for _, m in msgs if "last tick " in m]
            overruns = open(os.path.join(base, f"daemon-{n}-run.log")).read().count("tick_overrun")
            stop(p)
            stop(server)
            cpu = cpu1 - cpu0
            row = {"targets": n, "startup_median": statistics.median(startups), "startup_max": max(startups),
                   "rss_median_mib": statistics.median(rss) / 1024, "rss_max_mib": max(rss) / 1024,
                   "anon_median_mib": statistics.median(anon) / 1024, "file_median_mib": statistics.median(filebacked) / 1024,
                   "hwm_mib": hwm / 1024, "ticks": ticks, "cpu_s": cpu,
                   "cpu_per_tick_ms": cpu / ticks * 1000 if ticks else float("nan"),
                   "core_percent": cpu / (t1 - t0) * 100,
                   "tick_ms_median": statistics.median(tick_ms) if tick_ms else float("nan"),
                   "tick_ms_max": max(tick_ms) if tick_ms else float("nan"), "overruns": overruns,
                   "startups": startups, "rss_by_mapping_kib": mappings[:8]}
            rows.append(row)
            print(f"{n} targets: {json.dumps(row)}", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        for p in reversed(PROCS):
            stop(p)
        shutil.rmtree(base, ignore_errors=True)
    print(f"\nrollbackd run, interval {args.interval}, {args.warmup:.0f} s warm-up, {args.measure:.0f} s measured; "
          f"start-up: {args.starts + 1} starts each\n")
    print("| targets | RSS steady (median) | of which anonymous / file-backed | RSS max | VmHWM | ticks | CPU per tick | % of one core | tick wall median / max | start-up to READY median (max) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['targets']:,} | {r['rss_median_mib']:.1f} MiB | {r['anon_median_mib']:.1f} / {r['file_median_mib']:.1f} MiB | {r['rss_max_mib']:.1f} MiB | {r['hwm_mib']:.1f} MiB | "
              f"{r['ticks']} | {r['cpu_per_tick_ms']:.2f} ms | {r['core_percent']:.2f} % | "
              f"{r['tick_ms_median']:.0f} / {r['tick_ms_max']:.0f} ms | "
              f"{r['startup_median'] * 1000:.0f} ms ({r['startup_max'] * 1000:.0f} ms) |")


if __name__ == "__main__":
    main()
