#!/usr/bin/env python3
"""Soak under faults (issue 16, part 6): the release build of `rollbackd run` at a 250 ms interval guarding 100
targets for --minutes while this driver keeps breaking things on a schedule. Not run by `make test`.

    python3 Benchmarks/soak/run.py --minutes 60 [--no-build] [--json FILE] [--keep]

The daemon and its table are the overhead benchmark's (Benchmarks/overhead/run.py: error rate, P95 latency and
unhealthy ratio over `instances`, their three triggers, symlink strategy), at --interval (250ms), with probe and scrape
timeouts that fit a tick twice (--http-timeout 100ms, connect 50ms), safety {cooldown 0s, budget 100/24h, deployWindow
1h, verifyFor 1m}, one Standard Webhooks webhook (every event) and the telemetry page on a loopback port. It gets a
NOTIFY_SOCKET owned by this script (`WATCHDOG=1` per tick, `STATUS=… last tick N ms`). The targets are one asyncio
process (targets.py) whose /metrics error share follows `current/release.json`.

The schedule (times from the start; a cycle is --cycle seconds, 600 by default):
- faults in turns: every --phase (20) s the previous group of --fault-share (10) targets is healed and the next
  group starts refusing (listening socket closed), hanging (accepts, never answers) or answering garbage, in turn;
- the webhook receiver (Tests/Servers/webhook_receiver.py, which verifies each signature with `standardwebhooks`
  and records its `webhook-id`) is down from 0.3 to 0.6 of each cycle (3 minutes of 10);
- a deploy at 0.4 of each cycle: `current` renamed to a new release bad-K whose instances answer 60 % 500s; the
  daemon must roll it back to v1 (made known-good over the control socket at the start);
- a config reload every --reload-every (60) s: the table rewritten (temp + rename, 0644; the latency trigger's
  factor changes) and SIGHUP; every fifth rewrite is invalid (a trigger names a metric that does not exist);
- `status` over the control socket every second (latency and failures recorded);
- 20 idle control clients: connections that send nothing, reconnected whenever the daemon closes them.
Measured: VmRSS, open file descriptors and threads every 5 s; ticks and the longest tick (STATUS); `tick_overrun`
events; every event the daemon reported (its stderr) against every notification the receiver recorded (unique
`webhook-id`s, duplicates, failed verifications), with the spool drained at the end (the telemetry gauge
`rollbackd_webhook_pending_notifications` 0 and the spool directory empty); every change of `current` (deploys by
the driver, rollbacks by the daemon: none the schedule did not call for); the daemon alive throughout and its exit
status on SIGTERM. Prints Markdown tables; --json FILE writes everything.
"""
import argparse
import base64
import collections
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks"))
from benchlib import (NotifySocket, SymlinkReleases, control, die_with_parent, free_port, status_kib, stop,  # noqa: E402
                      wait_until)

HERE = os.path.join(ROOT, "Benchmarks", "soak")
RECEIVER = os.path.join(ROOT, "Tests", "Servers", "webhook_receiver.py")
_spec = importlib.util.spec_from_file_location("overhead_run", os.path.join(ROOT, "Benchmarks", "overhead", "run.py"))
overhead = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(overhead)

PROCS = []
EVENT_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\S+Z) \S+ \S+ ([a-z_]+): (.*)$")
LOG_LINE = re.compile(r"^rollbackd (\w+): (.{0,60})")  # the daemon's own log lines (not events)
FAULTS = ("refuse", "hang", "garbage")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def spawn(argv, logfile, env=None, stdin=None, stdout=None):
    p = subprocess.Popen(argv, stdin=stdin, stdout=stdout or open(logfile, "ab"), stderr=open(logfile, "ab"),
                         env=env, preexec_fn=die_with_parent)
    PROCS.append(p)
    return p


class Releases(SymlinkReleases):
    def __init__(self, base):
        self.dir = base
        self.link = os.path.join(base, "current")
        self.add("v1", 0.01)
        os.symlink(self.release("v1"), self.link)

    def add(self, v, error_rate):
        os.makedirs(self.release(v))
        with open(os.path.join(self.release(v), "release.json"), "w") as f:
            json.dump({"version": v, "errorRate": error_rate, "latencyMs": 5, "healthy": True}, f)


class Targets:
    """targets.py, driven over its stdin."""

    def __init__(self, base, n, link):
        urls = os.path.join(base, "urls")
        self.proc = spawn([sys.executable, os.path.join(HERE, "targets.py"), str(n), urls, link],
                          os.path.join(base, "targets.log"), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if not self.proc.stdout.readline().startswith(b"READY"):
            sys.exit(f"targets.py did not start; see {base}/targets.log")
        self.urls = open(urls).read().split()
        self.ports = [int(u.rsplit(":", 1)[1]) for u in self.urls]

    def set(self, mode, ports):
        self.proc.stdin.write(f"{mode} {','.join(map(str, ports))}\n".encode())
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().decode().strip()
        if not answer.startswith("OK"):
            raise RuntimeError(f"targets.py answered {answer!r} to {mode}")


class Receiver:
    """The webhook receiver on a fixed port, stopped and started by the schedule."""

    def __init__(self, base):
        self.base = base
        self.port = free_port()
        self.secret = os.path.join(base, "webhook.secret")
        with open(self.secret, "w") as f:
            f.write("whsec_" + base64.b64encode(os.urandom(24)).decode())
        os.chmod(self.secret, 0o600)
        self.log = os.path.join(base, "webhooks.jsonl")
        self.proc = None
        self.downtime = []  # (start, end) monotonic

    def start(self):
        self.proc = spawn([sys.executable, RECEIVER, "--port", str(self.port), "--secret",
                           open(self.secret).read(), "--log", self.log], os.path.join(self.base, "receiver.log"),
                          stdout=subprocess.PIPE)
        if not self.proc.stdout.readline().startswith(b"READY"):
            raise RuntimeError(f"the webhook receiver did not start; see {self.base}/receiver.log")
        if self.downtime and self.downtime[-1][1] is None:
            self.downtime[-1] = (self.downtime[-1][0], time.monotonic())

    def down(self):
        stop(self.proc)
        self.proc = None
        self.downtime.append((time.monotonic(), None))

    def records(self):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]


def table(instances, releases, interval, http_timeout, webhook_url, secret, telemetry_port, variant, valid):
    cfg = overhead.config(instances, os.path.join(releases.dir, "releases"), releases.link, interval)
    for m in cfg["metrics"].values():
        m.update(timeout=http_timeout, connectTimeout="50ms")
    cfg["triggers"][1]["condition"] = {"aboveBaseline": 2.0 + 0.1 * (variant % 5)}
    cfg["triggers"][1]["description"] = f"soak reload {variant}"
    if not valid:
        cfg["triggers"][0]["metric"] = "no_such_metric"
    cfg["safety"] = {"cooldown": "0s", "budget": {"max": 100, "window": "24h"}, "deployWindow": "1h",
                     "verifyFor": "1m"}
    cfg["notify"] = {"webhooks": [{"name": "soak", "url": webhook_url, "secretFile": secret}]}
    cfg["telemetry"] = {"listen": f"127.0.0.1:{telemetry_port}"}
    return cfg


def write_table(path, cfg):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=1)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def telemetry(port, family):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(family + "{")
               or line.startswith(family + " "))


class Background:
    """The status poller, the idle clients and the /proc sampler: threads that run until `done` is set."""

    def __init__(self, pid, sock, notify, idle):
        self.pid, self.sock, self.notify = pid, sock, notify
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.status = []  # (t, seconds or None, error)
        self.samples = []  # (t, rss KiB, fds, threads)
        self.ticks = []  # tick wall ms from STATUS, in order
        self.watchdogs = 0
        self.idle_connections = 0
        self.idle_errors = collections.Counter()
        self.threads = [threading.Thread(target=self.poll_status, daemon=True),
                        threading.Thread(target=self.sample, daemon=True)]
        self.threads += [threading.Thread(target=self.idle_client, daemon=True) for _ in range(idle)]
        for t in self.threads:
            t.start()

    def poll_status(self):
        while not self.done.is_set():
            t = time.monotonic()
            try:
                answer = control(self.sock, "status")
                err = None if answer.get("ok", True) and "report" in answer else json.dumps(answer)[:300]
            except (OSError, ValueError) as e:
                err = f"{type(e).__name__}: {e}"
            with self.lock:
                self.status.append((t, time.monotonic() - t, err))
            self.done.wait(max(0.0, t + 1 - time.monotonic()))

    def idle_client(self):
        while not self.done.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                    c.connect(self.sock)
                    with self.lock:
                        self.idle_connections += 1
                    c.settimeout(1)
                    while not self.done.is_set():
                        try:
                            if not c.recv(65536):
                                break  # the daemon closed it (no request line in time): connect again
                        except socket.timeout:
                            continue
            except OSError as e:
                with self.lock:
                    self.idle_errors[type(e).__name__] += 1
                self.done.wait(0.1)

    def sample(self):
        while not self.done.is_set():
            t = time.monotonic()
            try:
                row = (t, status_kib(self.pid, "VmRSS"), len(os.listdir(f"/proc/{self.pid}/fd")),
                       status_kib(self.pid, "Threads"))
            except OSError:
                row = None
            msgs = self.notify.snapshot()
            self.notify.clear()
            ticks = [int(m.split("last tick ")[1].split(" ms")[0]) for _, m in msgs if "last tick " in m]
            with self.lock:
                if row:
                    self.samples.append(row)
                self.ticks += ticks
                self.watchdogs += sum(1 for _, m in msgs if "WATCHDOG=1" in m.split("\n"))
            self.done.wait(max(0.0, t + 5 - time.monotonic()))

    def finish(self):
        self.done.set()
        for t in self.threads:
            t.join(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--interval", default="250ms")
    ap.add_argument("--http-timeout", default="100ms", help="probe and scrape timeout (connect: 50ms)")
    ap.add_argument("--cycle", type=float, default=600, help="seconds between deploys (and receiver outages)")
    ap.add_argument("--phase", type=float, default=20, help="seconds each fault group lasts")
    ap.add_argument("--fault-share", type=int, default=10, help="targets faulty at a time")
    ap.add_argument("--reload-every", type=float, default=60)
    ap.add_argument("--idle-clients", type=int, default=20)
    ap.add_argument("--drain-timeout", type=float, default=600, help="seconds to wait for the spool at the end")
    ap.add_argument("--no-build", action="store_true", help="use the existing .build/release/rollbackd")
    ap.add_argument("--json", help="write every result to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, state, receiver records)")
    args = ap.parse_args()
    bins = os.path.join(ROOT, ".build", "release")
    if not args.no_build:
        build = ["nice", "-n", "19", "swift", "build", "-c", "release", "--static-swift-stdlib", "--product",
                 "rollbackd"]
        log(" ".join(build))
        if subprocess.run(build, cwd=ROOT).returncode != 0:
            sys.exit(f"{' '.join(build)} failed")
    base = tempfile.mkdtemp(prefix="rollbackd-soak-")
    binary = os.path.join(base, "rollbackd")
    shutil.copy2(os.path.join(bins, "rollbackd"), binary)  # a rebuild during the run cannot swap it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    result = {}
    try:
        result = soak(args, base, binary)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        for p in reversed(PROCS):
            stop(p)
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    if result:
        report(args, result)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)


def soak(args, base, binary):
    releases = Releases(base)
    targets = Targets(base, args.targets, releases.link)
    receiver = Receiver(base)
    receiver.start()
    tport = free_port()
    cfg_path = os.path.join(base, "thresholds.json")
    reloads = [0]

    def cfg(valid=True):
        return table(targets.urls, releases, args.interval, args.http_timeout,
                     f"http://127.0.0.1:{receiver.port}/ok", receiver.secret, tport, reloads[0], valid)

    write_table(cfg_path, cfg())
    notify = NotifySocket(os.path.join(base, "notify.sock"))
    env = dict(os.environ, NOTIFY_SOCKET=notify.path)
    env.pop("WATCHDOG_USEC", None)
    sock = os.path.join(base, "control.sock")
    state = os.path.join(base, "state")
    daemon_log = os.path.join(base, "daemon.log")
    daemon = spawn([binary, "run", "--config", cfg_path, "--state-dir", state, "--socket", sock,
                    "--log-target", "stderr"], daemon_log, env=env)
    if notify.wait_for("READY=1", 60) is None:
        sys.exit(f"no READY=1 from rollbackd within 60 s; see {daemon_log}")
    wait_until("rollbackd reports v1 live", 30, lambda: control(sock, "status")["report"].get("current") == "v1")
    control(sock, "mark-known-good", version="v1")
    if control(sock, "status")["report"].get("knownGood") != "v1":
        sys.exit("mark-known-good v1 failed")
    bg = Background(daemon.pid, sock, notify, args.idle_clients)
    log(f"soak started: {args.targets} targets, interval {args.interval}, {args.minutes:g} min; work dir {base}")

    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    deploys, transitions, reload_log, fault_log = [], [], [], []
    live = releases.live()
    group = None
    phase_k = 0
    next_phase, next_reload = t0, t0 + args.reload_every
    cycle_k = 0
    died = None
    while time.monotonic() < end:
        now = time.monotonic()
        if daemon.poll() is not None:
            died = (now - t0, daemon.returncode)
            log(f"rollbackd exited with {daemon.returncode} at {now - t0:.0f} s")
            break
        v = releases.live()
        if v != live:
            transitions.append({"t": now - t0, "from": live, "to": v, "by": "daemon"})
            log(f"  current: {live} -> {v} (the daemon)")
            live = v
        if now >= next_phase:
            n = args.fault_share
            if group is not None:
                targets.set("ok", group)
            start = (phase_k * n) % len(targets.ports)
            group = [targets.ports[(start + i) % len(targets.ports)] for i in range(n)]
            mode = FAULTS[phase_k % len(FAULTS)]
            targets.set(mode, group)
            fault_log.append((now - t0, mode, start))
            phase_k += 1
            next_phase += args.phase
        if now >= next_reload:
            reloads[0] += 1
            valid = reloads[0] % 5 != 0
            write_table(cfg_path, cfg(valid))
            os.kill(daemon.pid, signal.SIGHUP)
            reload_log.append({"t": now - t0, "n": reloads[0], "valid": valid})
            next_reload += args.reload_every
        cycle_at = now - t0 - cycle_k * args.cycle
        if receiver.proc is not None and 0.3 * args.cycle <= cycle_at < 0.6 * args.cycle:
            receiver.down()
            log(f"  webhook receiver down (cycle {cycle_k + 1})")
        if receiver.proc is None and cycle_at >= 0.6 * args.cycle:
            receiver.start()
            log(f"  webhook receiver up (cycle {cycle_k + 1})")
        if len(deploys) == cycle_k and cycle_at >= 0.4 * args.cycle:
            v = f"bad-{cycle_k + 1}"
            releases.add(v, 0.6)
            releases.deploy(v)
            deploys.append({"t": now - t0, "version": v})
            transitions.append({"t": now - t0, "from": live, "to": v, "by": "driver"})
            log(f"  deployed {v} (60 % errors)")
            live = v
        if cycle_at >= args.cycle:
            cycle_k += 1
        time.sleep(0.05)
    ran = time.monotonic() - t0

    # Heal everything, bring the receiver back, and wait for the spool to drain.
    if group is not None:
        targets.set("ok", group)
    if receiver.proc is None:
        receiver.start()
    drained_after = None
    spool = os.path.join(state, "spool", "webhooks")
    if died is None:
        t = time.monotonic()
        deadline = t + args.drain_timeout
        while time.monotonic() < deadline and daemon.poll() is None:
            try:
                pending = telemetry(tport, "rollbackd_webhook_pending_notifications")
            except OSError:
                pending = None
            files = [f for _, _, fs in os.walk(spool) for f in fs if f.endswith(".json")]
            if pending == 0 and not files:
                drained_after = time.monotonic() - t
                break
            time.sleep(1)
        log(f"spool drained after {drained_after} s" if drained_after is not None else "spool NOT drained")
    try:
        overruns_telemetry = telemetry(tport, "rollbackd_tick_overruns_total")
    except OSError:
        overruns_telemetry = None
    spool_left = [f for _, _, fs in os.walk(spool) for f in fs]
    bg.finish()
    exit_code = None
    if daemon.poll() is None:
        daemon.terminate()
        try:
            exit_code = daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            exit_code = "killed after 30 s"
    else:
        exit_code = daemon.returncode
    time.sleep(1)  # the receiver's last records
    return analyse(args, ran, died, exit_code, drained_after, spool_left, overruns_telemetry, bg, deploys,
                   transitions, reload_log, fault_log, receiver, daemon_log, base, t0)


def analyse(args, ran, died, exit_code, drained_after, spool_left, overruns_telemetry, bg, deploys, transitions,
            reload_log, fault_log, receiver, daemon_log, base, t0):
    events = collections.Counter()
    errors = collections.Counter()  # the daemon's own error lines, by their first words
    rollback_lines, overrun_ms, rejected, crash_lines = [], [], [], []
    with open(daemon_log, errors="replace") as f:
        for line in f:
            m = EVENT_LINE.match(line)
            own = LOG_LINE.match(line)
            if own and own.group(1) in ("ERR", "CRIT", "ALERT", "EMERG"):
                errors[own.group(2).split(":")[0] + ": " + ":".join(own.group(2).split(":")[1:2])[:40]] += 1
            if not m:
                if "Fatal error" in line or "Segmentation" in line or "Illegal instruction" in line:
                    crash_lines.append(line.strip()[:300])
                continue
            kind = m.group(2)
            events[kind] += 1
            if kind == "rollback_started":
                rollback_lines.append(line.strip()[:300])
            elif kind == "tick_overrun":
                took = re.search(r"A tick took (\d+) ms", line)
                if took:
                    overrun_ms.append(int(took.group(1)))
            elif kind == "config_rejected":
                rejected.append(line.strip()[:300])
    records = receiver.records()
    by_id = collections.defaultdict(list)
    for r in records:
        by_id[r["id"]].append(r)
    received = collections.Counter()
    for rid, rs in by_id.items():
        kind = (rs[0].get("type") or "?").removeprefix("rollbackd.")
        received[kind] += 1
    duplicates = {rid: len(rs) for rid, rs in by_id.items() if len(rs) > 1}
    unverified = [r["id"] for r in records if not r["verified"]]
    # Every rollback the daemon did must follow a deploy of a bad release by the driver.
    uncalled, recoveries = [], []
    for i, tr in enumerate(transitions):
        if tr["by"] != "daemon":
            continue
        before = transitions[i - 1] if i else None
        if before is None or before["by"] != "driver" or not before["to"].startswith("bad-") or tr["to"] != "v1":
            uncalled.append(tr)
        else:
            recoveries.append({"version": before["to"], "deployed_at": before["t"], "swap_back_s": tr["t"] - before["t"]})
    not_rolled_back = [d["version"] for d in deploys if d["version"] not in {r["version"] for r in recoveries}]
    rows = []
    step = 300
    for k in range(int(ran // step) + 1):
        sl = [s for s in bg.samples if k * step <= s[0] - t0 < (k + 1) * step]
        if sl:
            rows.append({"minute": k * step / 60, "rss_mib": [min(s[1] for s in sl) / 1024, max(s[1] for s in sl) / 1024],
                         "fds": [min(s[2] for s in sl), max(s[2] for s in sl)],
                         "threads": [min(s[3] for s in sl), max(s[3] for s in sl)]})
    status_lat = [s[1] for s in bg.status if s[2] is None]
    status_fail = [(round(s[0] - t0, 1), s[2]) for s in bg.status if s[2] is not None]
    return {
        "ran_s": ran, "died": died, "exit_code": exit_code, "crash_lines": crash_lines,
        "ticks_watchdog": bg.watchdogs, "ticks_status": len(bg.ticks),
        "tick_ms_median": statistics.median(bg.ticks) if bg.ticks else None,
        "tick_ms_p99": sorted(bg.ticks)[int(len(bg.ticks) * 0.99)] if bg.ticks else None,
        "tick_ms_max": max(bg.ticks) if bg.ticks else None,
        "overrun_events": events["tick_overrun"], "overruns_telemetry": overruns_telemetry,
        "overrun_ms_max": max(overrun_ms) if overrun_ms else None, "overrun_ms": overrun_ms[:200],
        "memory": rows,
        "samples": [(round(s[0] - t0, 1), s[1], s[2], s[3]) for s in bg.samples],
        "status_polls": len(bg.status), "status_failures": status_fail,
        "status_ms_median": statistics.median(status_lat) * 1000 if status_lat else None,
        "status_ms_p99": sorted(status_lat)[int(len(status_lat) * 0.99)] * 1000 if status_lat else None,
        "status_ms_max": max(status_lat) * 1000 if status_lat else None,
        "idle_connections": bg.idle_connections, "idle_errors": dict(bg.idle_errors),
        "deploys": deploys, "transitions": transitions, "recoveries": recoveries, "uncalled_rollbacks": uncalled,
        "not_rolled_back": not_rolled_back, "rollback_started_events": len(rollback_lines),
        "rollback_lines": rollback_lines,
        "reloads": reload_log, "config_loaded_events": events["config_loaded"],
        "config_rejected_events": events["config_rejected"], "rejected_lines": rejected[:10],
        "faults": len(fault_log), "receiver_downtime_s": [round(b - a, 1) for a, b in receiver.downtime if b],
        "events": dict(events), "received_unique": dict(received), "received_total": len(records),
        "unique_ids": len(by_id), "duplicates": duplicates, "unverified": unverified[:20],
        "drained_after_s": drained_after, "log_errors": dict(errors), "spool_left": spool_left[:20], "work_dir": base,
    }


def report(args, r):
    print(f"\n## Soak: {r['ran_s'] / 60:.1f} min, {args.targets} targets, interval {args.interval}\n")
    print(f"- daemon: {'died at %.0f s with %s' % r['died'] if r['died'] else 'alive throughout'}; exit status on "
          f"SIGTERM {r['exit_code']}; crash lines in its log: {len(r['crash_lines'])}")
    print(f"- ticks: {r['ticks_watchdog']} (WATCHDOG=1); tick wall median {r['tick_ms_median']} ms, p99 "
          f"{r['tick_ms_p99']} ms, longest {r['tick_ms_max']} ms; tick_overrun events {r['overrun_events']} "
          f"(telemetry {r['overruns_telemetry']}), longest overrun {r['overrun_ms_max']} ms")
    print(f"- status: {r['status_polls']} polls, {len(r['status_failures'])} failed; median "
          f"{r['status_ms_median']:.1f} ms, p99 {r['status_ms_p99']:.1f} ms, max {r['status_ms_max']:.1f} ms; idle "
          f"client connections {r['idle_connections']} (errors {r['idle_errors']})")
    print(f"- deploys of a bad release {len(r['deploys'])}, rolled back {len(r['recoveries'])} "
          f"(swap back {', '.join('%.1f s' % x['swap_back_s'] for x in r['recoveries'])}); rollback_started events "
          f"{r['rollback_started_events']}; rollbacks not called for {len(r['uncalled_rollbacks'])}; not rolled back "
          f"{r['not_rolled_back']}")
    valid = sum(1 for x in r["reloads"] if x["valid"])
    print(f"- reloads {len(r['reloads'])} ({valid} valid, {len(r['reloads']) - valid} invalid): config_loaded "
          f"events {r['config_loaded_events']}, config_rejected {r['config_rejected_events']}")
    print(f"- notifications: events reported {sum(r['events'].values())}, unique webhook-ids received "
          f"{r['unique_ids']} ({r['received_total']} requests), duplicates {len(r['duplicates'])}, failed "
          f"verifications {len(r['unverified'])}; spool drained after "
          f"{'never' if r['drained_after_s'] is None else '%.0f' % r['drained_after_s']} s, left {len(r['spool_left'])}; "
          f"receiver down {r['receiver_downtime_s']} s")
    print(f"- the daemon's own error lines: {r['log_errors']}")
    print("\n| minutes | RSS (min–max) | open fds (min–max) | threads (min–max) |\n|---|---|---|---|")
    for row in r["memory"]:
        print(f"| {row['minute']:.0f}–{row['minute'] + 5:.0f} | {row['rss_mib'][0]:.1f}–{row['rss_mib'][1]:.1f} MiB | "
              f"{row['fds'][0]}–{row['fds'][1]} | {row['threads'][0]}–{row['threads'][1]} |")
    print("\n| event kind | reported (daemon stderr) | unique webhook-ids received |\n|---|---|---|")
    for kind in sorted(set(r["events"]) | set(r["received_unique"])):
        print(f"| `{kind}` | {r['events'].get(kind, 0)} | {r['received_unique'].get(kind, 0)} |")


if __name__ == "__main__":
    main()
