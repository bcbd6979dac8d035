#!/usr/bin/env python3
"""Decisions (issue: false rollbacks at low traffic): the evidence rule against the old consecutive-breaches rule,
each measured with its own release binary, side by side on real fixtures. Not run by `make test`.

    nice -n 19 python3 Benchmarks/decisions/run.py --scenario all
    nice -n 19 python3 Benchmarks/decisions/run.py --scenario 1,4   # any of 1 to 6 (1, 2, 4, 6 run concurrently)

The two rules:
  old  the binary of a5db10a (the last release before evidence triggers), the shipped table's error trigger as it was
       then: `error_rate` (scrape errorRatio, window 30s) above 0.10, breaches 3, clears 3, interval 5s.
  new  the binary of this tree, the same trigger as the shipped table has it now: no breaches/clears, confidence
       0.99 (the sequential test), interval 5s, window 30s; in scenario 3 an interval of 250ms and a 3s window.
Both: the error trigger is the table's only trigger (full automation, symlink strategy in-process), safety
{cooldown 0s, budget 100/24h, deployWindow 1h, soak 30m (as shipped), verifyFor 2m}; v1 is made known-good over
the control socket (what `rollbackd mark-known-good v1` sends).

A fixture is the recovery benchmark's: releases v1 (errorRate 0) and v2 (the scenario's rate), a `current` symlink,
two `rollbackd-demo-service` instances (of the new build; re-read `current/release.json` every second), its own
state directory, config (0644), control socket and daemon (`rollbackd run --log-target stderr`). A fixture is
prepared by starting the daemon, waiting until it reports v1 live, marking v1 known-good and letting it sample a
full window plus two intervals of v1; then the driver swaps `current` to v2 (time 0, at a random phase of the
daemon's tick) and watches `current` (readlink every 10 ms) and the daemon's stderr (`rollback_started`). An
independent load generator (loadgen.py, Poisson-paced, GET /api/x round-robin to the two instances) logs every
request with its monotonic send and answer times.

Scenarios (--scenario; 1, 2 and 4 run at the same time, 3 after them):
  1  v2 healthy at 3 % errors against the 10 % bound, 0.3 requests/s per fixture, --s1-fixtures (4) fixtures per
     rule, watched --watch-min (10) minutes: false rollbacks.
  2  v2 at 60 % errors, 0.3 requests/s, --s2-drills (4) drills per rule at once: deploy to swap back (timeout 5 min).
  3  v2 at 60 % errors, 100 requests/s: the new rule at 250ms/3s, --s3-drills (10) drills one after another; the old
     rule at its shipped 5s/30s/3 breaches, --s3-old-drills (4) drills, on its own fixture at the same time; a fresh
     daemon per drill. Time from the first failed request the load generator saw (its answer) to the swap back.
  4  v2 at 8 % errors against the 10 % bound, 100 requests/s, --s4-fixtures (1) per rule, --watch-min minutes:
     false rollbacks.
Two more, not in `all` (findings of the first runs):
  5  rolling forward: v2 (60 %) live under `manual` automation, then v3 (0 %): does the trigger fire on the fix?
  6  verification after a rollback at 100 requests/s (v2 60 %, 5s interval): one drill per rule, watched 170 s for
     verification_passed / verification_failed.
  7  verification after a rollback at low traffic (v2 60 %, 0.3 requests/s, 5s interval, verifyFor 2m): the new rule
     only, --s7-drills (4) drills at once, each watched until its verification verdict (at most 12 minutes): a
     quiet service's verification is extended while there is no evidence of badness, then passes with the
     evidence stated. Needs no old binary.

Binaries: --new-bin (default .build/release of this tree: `nice -n 19 swift build -c release --product rollbackd`,
then `--product rollbackd-demo-service`) and --old-bin (default /work/wt-old/.build/release: `git worktree add
/work/wt-old a5db10a && cd /work/wt-old && nice -n 19 swift build -c release --product rollbackd`). They are copied
into the work directory first, so a rebuild cannot swap them mid-run. Every process it starts runs under `nice -n 19` (the
machine is shared; run the driver itself so too) and dies with the driver. --json FILE writes every result; --keep keeps the logs.
"""
import argparse
import json
import os
import queue
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks"))
from benchlib import (SymlinkReleases, control, die_with_parent, free_port, read_requests, stop,  # noqa: E402
                      wait_until)
HERE = os.path.join(ROOT, "Benchmarks", "decisions")
NICE = ["nice", "-n", "19"]

PROCS = []
PROCS_LOCK = threading.Lock()


def _spawner(requests):
    while True:
        argv, log, stdout, box, done = requests.get()
        try:
            box.append(subprocess.Popen(NICE + argv, stdout=stdout if stdout is not None else open(log, "ab"),
                                        stderr=open(log, "ab"), preexec_fn=die_with_parent))
        except Exception as e:  # noqa: BLE001 - handed to the caller
            box.append(e)
        done.set()


_SPAWN_REQUESTS = queue.Queue()
threading.Thread(target=_spawner, args=(_SPAWN_REQUESTS,), daemon=True).start()


def spawn(argv, log, stdout=None):
    """Starts a process from one long-lived thread: PR_SET_PDEATHSIG fires when the *thread* that forked the child
    ends, so a daemon started from a short-lived worker thread would be killed with it."""
    box, done = [], threading.Event()
    _SPAWN_REQUESTS.put((argv, log, stdout, box, done))
    done.wait()
    if isinstance(box[0], Exception):
        raise box[0]
    with PROCS_LOCK:
        PROCS.append(box[0])
    return box[0]


def cleanup():
    with PROCS_LOCK:
        procs = list(reversed(PROCS))
    for p in procs:
        stop(p)


def http_ok(port):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
        return r.status == 200


def join_all(threads):
    """Joins with a timeout, so a SIGTERM or Ctrl-C reaches the main thread at once."""
    for t in threads:
        while t.is_alive():
            t.join(0.5)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- fixtures, daemons


class Fixture(SymlinkReleases):
    """Releases v1 (errorRate 0) and v2 (bad_rate), `current`, and two demo-service instances."""

    def __init__(self, name, base, bins, bad_rate, rate, extra=()):
        self.name, self.bad_rate, self.rate = name, bad_rate, rate
        self.dir = os.path.join(base, name)
        for v, r in (("v1", 0.0), ("v2", bad_rate), *extra):
            os.makedirs(os.path.join(self.dir, "releases", v))
            with open(os.path.join(self.dir, "releases", v, "release.json"), "w") as f:
                json.dump({"version": v, "errorRate": r, "latencyMs": 5, "healthy": True}, f)
        self.link = os.path.join(self.dir, "current")
        os.symlink(self.release("v1"), self.link)
        self.ports = [free_port(), free_port()]
        for port in self.ports:
            spawn([os.path.join(bins, "rollbackd-demo-service"), "--port", str(port), "--release-dir", self.link],
                  os.path.join(self.dir, f"service-{port}.log"))

    def ready(self):
        for port in self.ports:
            wait_until(f"demo service on {port}", 20, lambda: http_ok(port))

    def loadspec(self):
        return f"{self.name}:{self.rate}=" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def requests_path(self, load_dir):
        return os.path.join(load_dir, self.name + ".requests")


class Daemon:
    """One `rollbackd run` guarding one fixture, under one rule."""

    def __init__(self, fixture, rule, bins, interval, window, automation="full"):
        self.fx, self.rule, self.bins, self.interval, self.window = fixture, rule, bins, interval, window
        self.automation = automation
        self.proc = None
        self.n = 0

    def config(self):
        trigger = {"name": "critical-error-rate", "metric": "error_rate", "condition": {"above": 0.10},
                   "severity": "critical", "respondWithin": "2m", "automation": "full"}
        if self.rule == "old":
            trigger.update(breaches=3, clears=3)  # the shipped table at a5db10a
        else:
            trigger.update(confidence=0.99)  # the shipped table now: no breaches/clears
        return {
            "service": "demo", "interval": f"{int(self.interval * 1000)}ms", "automation": self.automation,
            "instances": [f"http://127.0.0.1:{p}" for p in self.fx.ports],
            "metrics": {"error_rate": {
                "type": "scrape", "path": "/metrics", "measure": "errorRatio", "counter": "http_requests_total",
                "errorLabels": {"code": "5.."}, "window": f"{int(self.window)}s"}},
            "triggers": [trigger],
            "rollback": {"strategy": "symlink",
                         "symlink": {"releasesDir": os.path.join(self.fx.dir, "releases"),
                                     "currentLink": self.fx.link}},
            "safety": {"cooldown": "0s", "budget": {"max": 100, "window": "24h"}, "deployWindow": "1h",
                       "soak": "30m", "verifyFor": "2m"},
        }

    def control(self, command, **fields):
        return control(self.socket, command, **fields)

    def prepare(self):
        """A fresh daemon with a fresh state directory; returns when v1 is known-good and a full window plus two
        intervals of v1 is behind it."""
        stop(self.proc)
        self.n += 1
        d = os.path.join(self.fx.dir, f"{self.rule}-daemon{self.n}")
        os.makedirs(d)
        cfg = os.path.join(d, "thresholds.json")
        with open(cfg, "w") as f:
            json.dump(self.config(), f, indent=1)
        os.chmod(cfg, 0o644)
        self.socket = os.path.join(d, "control.sock")
        self.log = os.path.join(d, "daemon.log")
        started = time.monotonic()
        self.proc = spawn([os.path.join(self.bins, "rollbackd"), "run", "--config", cfg, "--state-dir",
                           os.path.join(d, "state"), "--socket", self.socket, "--log-target", "stderr"], self.log)
        wait_until(f"{self.fx.name}: rollbackd reports v1 live", 60,
                   lambda: self.control("status").get("report", {}).get("current") == "v1", interval=0.05)
        answer = self.control("mark-known-good", version="v1")
        if self.control("status").get("report", {}).get("knownGood") != "v1":
            raise RuntimeError(f"{self.fx.name}: mark-known-good v1 failed: {answer}")
        warm = self.window + 2 * self.interval
        time.sleep(max(0.0, started + warm - time.monotonic()))
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.fx.name}: rollbackd exited; see {self.log}")

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def events(self, kind):
        return [line for line in self.log_text().splitlines() if f"ROLLBACKD_EVENT={kind}" in line
                or f"EVENT={kind} " in line or f'"{kind}"' in line or f" {kind}:" in line or f"[{kind}]" in line]

    def finish(self):
        stop(self.proc)


# ---------------------------------------------------------------- scenarios 1, 2 and 4: watch after a deploy


class Watch:
    """A prepared fixture: deploy v2, then record the first time `current` points at v1 again. Each watch polls
    in its own thread (readlink every 10 ms), so stopping one daemon never delays another fixture's clock."""

    def __init__(self, scenario, fixture, daemon, duration, stop_on_swap, stop_on_verdict=False):
        self.scenario, self.fx, self.d, self.duration, self.stop_on_swap = scenario, fixture, daemon, duration, stop_on_swap
        self.stop_on_verdict = stop_on_verdict
        self.verdict_at = None
        self.t0 = self.swapped = None
        self.stop_s = None
        self.done = False

    def run(self):
        time.sleep(random.uniform(0, self.d.interval))
        self.t0 = time.monotonic()
        self.fx.deploy("v2")
        checked = 0.0
        while True:
            now = time.monotonic()
            if self.swapped is None and self.fx.live() == "v1":
                self.swapped = now
                log(f"  {self.fx.name}: swapped back to v1 {self.swapped - self.t0:.2f} s after the deploy")
            if now - self.t0 >= self.duration or (self.stop_on_swap and self.swapped is not None
                                                  and now - self.swapped > 5):
                break
            if self.stop_on_verdict and self.swapped is not None and now - checked >= 1:
                checked = now
                text = self.d.log_text()
                if " verification_passed:" in text or " verification_failed:" in text:
                    self.verdict_at = now - self.t0
                    break
            time.sleep(0.01)
        t = time.monotonic()
        self.d.finish()
        self.stop_s = time.monotonic() - t
        self.done = True

    def result(self, load_dir):
        reqs = [r for r in read_requests(self.fx.requests_path(load_dir))
                if r[0] >= self.t0 and (self.swapped is None or r[0] <= self.swapped)]
        failed = [r for r in reqs if not r[2]]
        started = self.d.events("rollback_started")
        fired = self.d.events("trigger_firing")
        insufficient = [line for line in self.d.log_text().splitlines() if "insufficient evidence" in line]
        return {"fixture": self.fx.name, "rule": self.d.rule, "swap": None if self.swapped is None else self.swapped - self.t0,
                "rollback_started_events": len(started), "firing_events": len(fired),
                "insufficient_evidence_lines": len(insufficient),
                "requests": len(reqs), "failures": len(failed),
                "first_failure": None if not failed else min(r[1] for r in failed) - self.t0,
                "daemon_live_to_rollback_finished": self.daemon_view(), "daemon_stop_s": self.stop_s,
                "verdict_s": self.verdict_at,
                "verification": [line[:600] for line in self.d.log_text().splitlines()
                                 if " verification_passed:" in line or " verification_failed:" in line
                                 or " automation_halted:" in line],
                "firing": fired[:1]}

    def daemon_view(self):
        """Seconds from the daemon's `release_deployed` of v2 to its first `rollback_finished` (its own clock)."""
        stamp = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")
        live = done = None
        for line in self.d.log_text().splitlines():
            m = stamp.match(line)
            if not m:
                continue
            t = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + m.group(1)[19:])
            if live is None and " release_deployed:" in line and "to_version=v2" in line:
                live = t
            elif live is not None and done is None and " rollback_finished:" in line:
                done = t
        return None if (live is None or done is None) else done - live


def run_watches(args, base, bins, load_dir, scenarios):
    fixtures, watches = [], []
    m = args.watch_min * 60
    plan = []
    if "1" in scenarios:
        for rule in ("old", "new"):
            for i in range(args.s1_fixtures):
                plan.append(("1", rule, i, 0.03, 0.3, m, False))
    if "2" in scenarios:
        for rule in ("old", "new"):
            for i in range(args.s2_drills):
                plan.append(("2", rule, i, 0.6, 0.3, 300, True))
    if "4" in scenarios:
        for rule in ("old", "new"):
            for i in range(args.s4_fixtures):
                plan.append(("4", rule, i, 0.08, 100, m, False))
    if "6" in scenarios:
        for rule in ("old", "new"):
            plan.append(("6", rule, 0, 0.6, 100, 170, False))
    if "7" in scenarios:
        for i in range(args.s7_drills):
            plan.append(("7", "new", i, 0.6, 0.3, 720, False))
    for scen, rule, i, bad, rate, dur, stop_on_swap in plan:
        fx = Fixture(f"s{scen}-{rule}-{i + 1}", base, bins["new"], bad, rate)
        fixtures.append(fx)
        watches.append(Watch(scen, fx, Daemon(fx, rule, bins[rule], 5.0, 30.0), dur, stop_on_swap,
                             stop_on_verdict=scen == "7"))
    for fx in fixtures:
        fx.ready()
    load = spawn([sys.executable, os.path.join(HERE, "loadgen.py"), "--out", load_dir]
                 + [fx.loadspec() for fx in fixtures], os.path.join(base, "loadgen-watch.log"), stdout=subprocess.PIPE)
    if load.stdout.readline().strip() != b"READY":
        raise RuntimeError("the load generator did not start")
    log(f"scenarios {','.join(sorted(scenarios))}: {len(watches)} fixtures, preparing daemons")
    threads = [threading.Thread(target=w.d.prepare, daemon=True) for w in watches]
    for t in threads:
        t.start()
    join_all(threads)
    for w in watches:
        if w.d.proc.poll() is not None:
            raise RuntimeError(f"{w.fx.name}: the daemon did not start; see {w.d.log}")
    threads = [threading.Thread(target=w.run, daemon=True) for w in watches]
    for t in threads:
        t.start()
    log(f"deploying v2 on every fixture; watching up to {max(w.duration for w in watches) / 60:.0f} min")
    last_status = time.monotonic()
    while not all(w.done for w in watches):
        if time.monotonic() - last_status > 60:
            last_status = time.monotonic()
            log(f"  {sum(w.done for w in watches)}/{len(watches)} fixtures done, "
                f"{sum(w.swapped is not None for w in watches)} swapped back")
        time.sleep(0.5)
    time.sleep(3)  # the load generator's last answers flushed
    stop(load)
    return [dict(w.result(load_dir), scenario=w.scenario, duration=w.duration) for w in watches]


# ---------------------------------------------------------------- scenario 3: drills at 100 requests/s


def drill3(fx, daemon, load_dir, timeout=180):
    daemon.prepare()
    t0, swapped = fx.deploy_bad_and_wait(daemon.interval, timeout)
    time.sleep(3)  # the service re-reads v1 (≤ 1 s), the load generator flushes
    daemon.finish()
    end = swapped if swapped is not None else time.monotonic()
    reqs = [r for r in read_requests(fx.requests_path(load_dir)) if r[0] >= t0]
    failed = [r for r in reqs if not r[2]]
    first = min(failed, key=lambda r: r[1]) if failed else None
    fired = daemon.events("trigger_firing")
    return {"swap": None if swapped is None else swapped - t0,
            "first_failure_answered": None if first is None else first[1] - t0,
            "first_failure_sent": None if first is None else first[0] - t0,
            "first_failure_to_swap": None if (first is None or swapped is None) else swapped - first[1],
            "requests_to_swap": sum(1 for r in reqs if r[0] <= end),
            "failures_to_swap": sum(1 for r in failed if r[0] <= end),
            "clean_before_first_failure": sum(1 for r in reqs if first is not None and r[2] and r[1] < first[1]),
            "firing": fired[:1]}


def run_scenario3(args, base, bins, load_dir):
    fx_new = Fixture("s3-new", base, bins["new"], 0.6, 100)
    fx_old = Fixture("s3-old", base, bins["new"], 0.6, 100)
    fx_new.ready()
    fx_old.ready()
    load = spawn([sys.executable, os.path.join(HERE, "loadgen.py"), "--out", load_dir, fx_new.loadspec(),
                  fx_old.loadspec()], os.path.join(base, "loadgen-s3.log"), stdout=subprocess.PIPE)
    if load.stdout.readline().strip() != b"READY":
        raise RuntimeError("the load generator did not start")
    results = {"new": [], "old": []}
    plans = [("new", fx_new, Daemon(fx_new, "new", bins["new"], 0.25, 3.0), args.s3_drills),
             ("old", fx_old, Daemon(fx_old, "old", bins["old"], 5.0, 30.0), args.s3_old_drills)]
    errors = []

    def loop(rule, fx, daemon, n):
        try:
            for i in range(n):
                r = drill3(fx, daemon, load_dir)
                results[rule].append(r)
                log(f"  s3 {rule} drill {i + 1}: first failure {fmt(r['first_failure_answered'])} s after the deploy, "
                    f"swap back {fmt(r['swap'])} s after the deploy = {fmt(r['first_failure_to_swap'])} s after the "
                    f"first failure ({r['failures_to_swap']}/{r['requests_to_swap']} failed)")
        except Exception as e:  # noqa: BLE001 - reported, the other loop goes on
            errors.append(f"{rule}: {e}")

    log(f"scenario 3: {args.s3_drills} drills of the new rule (250ms, 3s window), {args.s3_old_drills} of the old "
        "(5s, 30s, 3 breaches), at the same time on their own fixtures")
    threads = [threading.Thread(target=loop, args=p, daemon=True) for p in plans if p[3] > 0]
    for t in threads:
        t.start()
    join_all(threads)
    stop(load)
    if errors:
        log("scenario 3 errors: " + "; ".join(errors))
    return results


# ---------------------------------------------------------------- scenario 5: rolling forward from a bad release


def run_scenario5(args, base, bins, load_dir):
    """v2 (60 % errors) is live and firing, but automation is capped at `manual` (the operator fixes forward);
    after --s5-bad-s seconds v3 (0 % errors) replaces it. Does the trigger fire on v3, the fix?"""
    fixtures, daemons = [], []
    for rule in ("old", "new"):
        fx = Fixture(f"s5-{rule}", base, bins["new"], 0.6, 100, extra=(("v3", 0.0),))
        fixtures.append(fx)
        daemons.append(Daemon(fx, rule, bins[rule], 5.0, 30.0, automation="manual"))
    for fx in fixtures:
        fx.ready()
    load = spawn([sys.executable, os.path.join(HERE, "loadgen.py"), "--out", load_dir]
                 + [fx.loadspec() for fx in fixtures], os.path.join(base, "loadgen-s5.log"), stdout=subprocess.PIPE)
    if load.stdout.readline().strip() != b"READY":
        raise RuntimeError("the load generator did not start")
    log(f"scenario 5: v2 (60 %) for {args.s5_bad_s:.0f} s under manual automation, then v3 (0 %) for "
        f"{args.s5_watch_s:.0f} s")
    threads = [threading.Thread(target=d.prepare, daemon=True) for d in daemons]
    for t in threads:
        t.start()
    join_all(threads)
    for fx in fixtures:
        fx.deploy("v2")
    time.sleep(args.s5_bad_s)
    t3 = time.monotonic()
    for fx in fixtures:
        fx.deploy("v3")
    time.sleep(args.s5_watch_s)
    out = {}
    for fx, d in zip(fixtures, daemons):
        d.finish()
        fired = [line for line in d.events("trigger_firing")]
        on_v2 = [line for line in fired if "from_version=v2" in line]
        on_v3 = [line for line in fired if "from_version=v3" in line]
        reqs = [r for r in read_requests(fx.requests_path(load_dir)) if r[0] >= t3 + 1.5]
        out[d.rule] = {"fired_on_v2": len(on_v2) > 0, "fired_on_v3": len(on_v3) > 0,
                       "v3_firing": on_v3[:1], "v2_firing": on_v2[:1],
                       "v3_requests_after_1_5s": len(reqs), "v3_failed_after_1_5s": sum(1 for r in reqs if not r[2])}
        log(f"  s5 {d.rule}: fired on v2 {out[d.rule]['fired_on_v2']}, on v3 (0 % errors) {out[d.rule]['fired_on_v3']}"
            + (f": {on_v3[0][:220]}" if on_v3 else ""))
    stop(load)
    return out


# ---------------------------------------------------------------- tables


def fmt(x, digits=2):
    return "—" if x is None else f"{x:.{digits}f}"


def med_worst(vals):
    ok = [v for v in vals if v is not None]
    if not ok:
        return None, None
    return statistics.median(ok), (max(ok) if len(ok) == len(vals) else None)


def table_false(rows, scen, title):
    rows = [r for r in rows if r["scenario"] == scen]
    if not rows:
        return ""
    lines = [f"\n### Scenario {scen}: {title}\n",
             "| rule | fixtures | false rollbacks | swap back after the deploy (s) | requests while v2 was live, median "
             "| failed, median | 'insufficient evidence' notes |",
             "|---|---|---|---|---|---|---|"]
    for rule in ("old", "new"):
        rr = [r for r in rows if r["rule"] == rule]
        if not rr:
            continue
        swaps = [r["swap"] for r in rr if r["swap"] is not None]
        lines.append(f"| {rule} | {len(rr)} | **{len(swaps)} of {len(rr)}** | "
                     f"{', '.join(fmt(s, 1) for s in sorted(swaps)) or '—'} | "
                     f"{statistics.median(r['requests'] for r in rr):.0f} | "
                     f"{statistics.median(r['failures'] for r in rr):.0f} | "
                     f"{sum(1 for r in rr if r['insufficient_evidence_lines'])} of {len(rr)} |")
    return "\n".join(lines)


def table2(rows):
    rows = [r for r in rows if r["scenario"] == "2"]
    if not rows:
        return ""
    lines = ["\n### Scenario 2: 60 % errors at 0.3 requests/s\n",
             "| rule | drills | rolled back | deploy → swap back median | worst | first failed request → swap back, "
             "median (worst) | requests / failed before the swap back, median |",
             "|---|---|---|---|---|---|---|"]
    detail = []
    for rule in ("old", "new"):
        rr = [r for r in rows if r["rule"] == rule]
        if not rr:
            continue
        med, worst = med_worst([r["swap"] for r in rr])
        ff = [None if (r["swap"] is None or r["first_failure"] is None) else r["swap"] - r["first_failure"] for r in rr]
        fm, fw = med_worst(ff)
        lines.append(f"| {rule} | {len(rr)} | {sum(r['swap'] is not None for r in rr)} | **{fmt(med, 1)} s** | "
                     f"{fmt(worst, 1)} s | {fmt(fm, 1)} s ({fmt(fw, 1)} s) | "
                     f"{statistics.median(r['requests'] for r in rr):.0f} / "
                     f"{statistics.median(r['failures'] for r in rr):.0f} |")
        detail.append(f"- {rule}: swap back (s) {', '.join(fmt(r['swap'], 1) for r in rr)}; the daemon's own "
                      f"v2-live → rollback_finished (s) "
                      f"{', '.join(fmt(r.get('daemon_live_to_rollback_finished'), 1) for r in rr)}; first failure (s after "
                      f"the deploy) {', '.join(fmt(r['first_failure'], 1) for r in rr)}; requests/failed "
                      f"{', '.join(str(r['requests']) + '/' + str(r['failures']) for r in rr)}")
    return "\n".join(lines) + "\n\n" + "\n".join(detail)


def table3(res):
    if not res or not (res.get("new") or res.get("old")):
        return ""
    lines = ["\n### Scenario 3: 60 % errors at 100 requests/s\n",
             "| rule | settings | drills | first failed request → swap back, median | worst | deploy → first failure, "
             "median | deploy → swap back, median (worst) | failed requests before the swap back, median |",
             "|---|---|---|---|---|---|---|---|"]
    desc = {"new": "interval 250ms, window 3s, confidence 0.99", "old": "interval 5s, window 30s, breaches 3"}
    detail = []
    for rule in ("new", "old"):
        rr = res.get(rule) or []
        if not rr:
            continue
        fm, fw = med_worst([r["first_failure_to_swap"] for r in rr])
        dm, _ = med_worst([r["first_failure_answered"] for r in rr])
        sm, sw = med_worst([r["swap"] for r in rr])
        lines.append(f"| {rule} | {desc[rule]} | {len(rr)} | **{fmt(fm)} s** | {fmt(fw)} s | {fmt(dm)} s | "
                     f"{fmt(sm)} s ({fmt(sw)} s) | {statistics.median(r['failures_to_swap'] for r in rr):.0f} |")
        detail.append(f"- {rule}: first failure → swap back (s) "
                      f"{', '.join(fmt(r['first_failure_to_swap']) for r in rr)}; deploy → first failure (s) "
                      f"{', '.join(fmt(r['first_failure_answered']) for r in rr)}; clean answers before the first "
                      f"failure {', '.join(str(r['clean_before_first_failure']) for r in rr)}")
    return "\n".join(lines) + "\n\n" + "\n".join(detail)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="all", help="all, or a comma-separated list of 1, 2, 3, 4")
    ap.add_argument("--new-bin", default=os.path.join(ROOT, ".build", "release"))
    ap.add_argument("--old-bin", default="/work/wt-old/.build/release")
    ap.add_argument("--watch-min", type=float, default=10, help="minutes each fixture of scenarios 1 and 4 is watched")
    ap.add_argument("--s1-fixtures", type=int, default=4)
    ap.add_argument("--s2-drills", type=int, default=4)
    ap.add_argument("--s3-drills", type=int, default=10)
    ap.add_argument("--s3-old-drills", type=int, default=4)
    ap.add_argument("--s4-fixtures", type=int, default=1)
    ap.add_argument("--s7-drills", type=int, default=4)
    ap.add_argument("--s5-bad-s", type=float, default=45, help="scenario 5: seconds v2 is live before v3")
    ap.add_argument("--s5-watch-s", type=float, default=45, help="scenario 5: seconds v3 is watched")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    ap.add_argument("--json", help="also write every result as JSON to this file")
    args = ap.parse_args()
    scenarios = {"1", "2", "3", "4"} if args.scenario == "all" else set(args.scenario.split(","))
    if not scenarios <= {"1", "2", "3", "4", "5", "6", "7"}:
        sys.exit(f"unknown scenario in {args.scenario}")
    needs_old = bool(scenarios - {"7"})
    for d, names in ((args.new_bin, ("rollbackd", "rollbackd-demo-service")),
                     (args.old_bin, ("rollbackd",) if needs_old else ())):
        for b in names:
            if not os.access(os.path.join(d, b), os.X_OK):
                sys.exit(f"{d}/{b} is missing (see the docstring for the builds)")
    base = tempfile.mkdtemp(prefix="rollbackd-decisions-")
    load_dir = os.path.join(base, "load")
    os.makedirs(load_dir)
    bins = {"new": os.path.join(base, "bin-new"), "old": os.path.join(base, "bin-old")}
    for rule, src, names in (("new", args.new_bin, ("rollbackd", "rollbackd-demo-service")),
                             ("old", args.old_bin, ("rollbackd",) if needs_old else ())):
        os.makedirs(bins[rule])
        for b in names:
            shutil.copy2(os.path.join(src, b), os.path.join(bins[rule], b))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    log(f"work directory {base}")
    started = time.monotonic()
    out = {"watches": [], "scenario3": {}, "scenario5": {}}
    try:
        if scenarios & {"1", "2", "4", "6", "7"}:
            out["watches"] = run_watches(args, base, bins, load_dir, scenarios & {"1", "2", "4", "6", "7"})
        if "3" in scenarios:
            out["scenario3"] = run_scenario3(args, base, bins, load_dir)
        if "5" in scenarios:
            out["scenario5"] = run_scenario5(args, base, bins, load_dir)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        cleanup()
        out["wall_s"] = time.monotonic() - started
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            log(f"logs kept in {base}")
    w = out["watches"]
    print(table_false(w, "1", "a healthy release (3 % errors) at 0.3 requests/s, 10 % bound"))
    print(table2(w))
    print(table3(out["scenario3"]))
    print(table_false(w, "4", "8 % errors against the 10 % bound at 100 requests/s"))
    for r in (r for r in w if r["scenario"] == "6"):
        print(f"\nscenario 6, {r['rule']}: swap back {fmt(r['swap'])} s; " + (" | ".join(r["verification"]) or "no verdict"))
    for r in (r for r in w if r["scenario"] == "7"):
        print(f"\nscenario 7, {r['fixture']}: swap back {fmt(r['swap'])} s, verdict {fmt(r.get('verdict_s'))} s after "
              f"the deploy; " + (" | ".join(r["verification"]) or "no verdict"))
    if out["scenario5"]:
        print("\n### Scenario 5: rolling forward from a bad release (v2 60 %, then v3 0 %), manual automation\n")
        print("| rule | fired on v2 | fired on v3 (the fix) |\n|---|---|---|")
        for rule, r in out["scenario5"].items():
            print(f"| {rule} | {r['fired_on_v2']} | **{r['fired_on_v3']}** |")
    print(f"\nwall time {out['wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
