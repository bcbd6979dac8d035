#!/usr/bin/env python3
"""Time to recovery (issues 7 and 15): rollbackd side by side with the do-it-yourself alternative, a real Prometheus and
Alertmanager (Debian packages) with an alert rule on the same metric and a webhook that runs the same symlink
swap. Not run by `make test`.

    python3 Benchmarks/recovery/run.py [--setting tight|defaults|both|evidence|quiet] [--drills 10]
                                       [--prom-default-drills 3] [--quiet-fixtures 4] [--watch-min 10]

Each tool guards its own copy of the same fixture: releases v1 (no errors) and v2 (60 % of /api requests fail),
a `current` symlink, two `rollbackd-demo-service` instances reading `current/release.json` (re-read every
second). An independent load generator (loadgen.py, one process per fixture) sends 100 requests/s to each fixture
all the time and counts failures in 250 ms buckets. A drill: the fixture runs v1 with a full metric window of
clean history, the driver swaps `current` to v2 (time 0), and waits until the tool swaps it back to v1. Recovery
is the first moment after which the error ratio of the load generator's trailing 1 s window stays under 1 %
(checked until 5 s after the swap back; the window and the service's 1 s re-read add up to ~1 s to both tools
alike).

rollbackd (release build, `rollbackd run`, symlink strategy in-process): a fresh state directory and a fresh
daemon per drill, so no rolled-back-from release, cooldown or budget carries over; v1 is made known-good with the
control socket's `mark-known-good` (what `rollbackd mark-known-good v1` sends; the shipped 30 min soak is kept) and
the daemon runs for a full metric window before v2 goes live.

Prometheus + Alertmanager: Prometheus runs for the whole setting (its TSDB holds the history a rate() needs);
Alertmanager is restarted with an empty data directory before each drill (its notification log would otherwise
suppress the second notification of the same alert for repeat_interval, 4 h); before each drill the rule's
expression must be under 1 % again (the previous drill's errors have left the window).

Settings (both tools alike, see docs/benchmarks.md for why):
  tight     rollbackd interval 1s, breaches 2, window 5s | Prometheus scrape/eval 1s, rate[5s], for 1s
            (fires on the 2nd consecutive true evaluation), Alertmanager group_wait 0s
  defaults  issue 7's shipped thresholds.json: interval 5s, breaches 3, window 30s (today's binary combines
            breaches with the evidence test; today's table has no breaches on it) | Prometheus scrape/eval
            1m (its defaults), rate[5m], for 1m, Alertmanager defaults (group_wait 30s, group_interval 5m)
  evidence  three tools in one run, drills alternating: rollbackd's evidence rule (interval 250ms, window 3s, no
            breaches/clears, confidence 0.99: the sequential test decides), Prometheus + Alertmanager at `tight`,
            and Prometheus + Alertmanager at 250ms (scrape/eval 250ms, rate[1s] = 4 scrapes, for 250ms = fires
            on the 2nd consecutive true evaluation, group_wait 0s)
In `defaults` a Prometheus drill takes ~3-4 min and its errors need 5 min to leave the rate window, so fewer
Prometheus drills are run (--prom-default-drills) and rollbackd drills fill the waits.

`quiet` is no drill but the false-alert side of the trade-off: --quiet-fixtures fixtures per tool whose v2 is a
*healthy* release with a true error rate of 3 % (bound 10 %), 0.3 requests/s of Poisson traffic each (the decisions
benchmark's loadgen.py), all deployed at once and watched --watch-min minutes: rollbackd's evidence rule at 250ms
(rollbacks counted; `full`, it really swaps), Prometheus + Alertmanager at 250ms and at tight 1s (one Prometheus and
one Alertmanager per setting, the fixtures as separate jobs, the same rule `by (job)`; the webhook receiver only
logs, so every alert that reached it, i.e. would have rolled a release back, is counted, and the first one is the
fixture's false rollback). After the watch, Prometheus' own record (query_range over the watch: the rule's
expression at every evaluation step, and the ALERTS series) says how often the expression had no value (no
traffic in the rate window: 0/0), was above the bound, and how many pending and firing episodes there were.
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
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks"))
from benchlib import (SymlinkReleases, control, die_with_parent, free_port, read_requests, stop,  # noqa: E402
                      wait_until)
HERE = os.path.join(ROOT, "Benchmarks", "recovery")
BUCKET = 0.25
WINDOW = 1.0  # the load generator's sliding window
LOAD_RATE = 100

SETTINGS = {
    "tight": dict(rb_interval=1, rb_breaches=2, rb_window=5,
                  prom_scrape="1s", prom_eval="1s", prom_range="5s", prom_for="1s",
                  am_group_wait="0s", am_group_interval="1m", timeout=120, prom_warmup=10),
    "defaults": dict(rb_interval=5, rb_breaches=3, rb_window=30,
                     prom_scrape="1m", prom_eval="1m", prom_range="5m", prom_for="1m",
                     am_group_wait="30s", am_group_interval="5m", timeout=600, prom_warmup=330),
}
# The `evidence` and `quiet` settings: rollbackd's evidence rule at 250ms (the decisions benchmark's scenario 3),
# and Prometheus + Alertmanager at 250ms. rate[1s] holds 4 scrapes (Prometheus' rule of thumb, as rate[5s] at 1s);
# `for: 250ms` at a 250ms evaluation fires on the 2nd consecutive true evaluation, as `for: 1s` at 1s does.
RB_EVIDENCE = dict(rb_interval=0.25, rb_confidence=0.99, rb_window=3)
PROM_FAST = dict(prom_scrape="250ms", prom_eval="250ms", prom_range="1s", prom_for="250ms",
                 am_group_wait="0s", am_group_interval="1m", prom_warmup=10)
EVIDENCE_TIMEOUT = 120
QUIET_RATE = 0.3
QUIET_ERROR_RATE = 0.03

PROCS = []


def spawn(argv, log, env=None, stdout=None):
    p = subprocess.Popen(argv, stdout=stdout if stdout is not None else open(log, "ab"),
                         stderr=open(log, "ab"), env=env, preexec_fn=die_with_parent)
    PROCS.append(p)
    return p


def cleanup():
    for p in reversed(PROCS):
        stop(p)


def seconds(d):
    """A Prometheus duration of one unit ("250ms", "1s", "5m") in seconds."""
    for unit, f in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if d.endswith(unit) and d[:-len(unit)].isdigit():
            return int(d[:-len(unit)]) * f
    raise ValueError(f"unsupported duration {d!r}")


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def tool_version(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def ensure_prerequisites(args):
    missing = [pkg for binary, pkg in (("prometheus", "prometheus"), ("prometheus-alertmanager", "prometheus-alertmanager"))
               if shutil.which(binary) is None]
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            sys.exit(f"missing Debian packages {' '.join(missing)}: run apt-get install {' '.join(missing)} as root")
        print(f"installing {' '.join(missing)} (apt-get)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update"], check=True, env=env, stdout=subprocess.DEVNULL)
        if subprocess.run(["apt-get", "install", "-y", *missing], env=env, stdout=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"apt-get install {' '.join(missing)} failed")
    bins = os.path.join(ROOT, ".build", "release")
    if not args.no_build:
        for product in ("rollbackd", "rollbackd-demo-service"):
            # --static-swift-stdlib: the binary `make release` ships (and the overhead benchmark measures); nice'd,
            # as every build on the shared machine (the benchmark itself runs at normal priority).
            build = ["nice", "-n", "10", "swift", "build", "-c", "release", "--static-swift-stdlib",
                     "--product", product]
            print(" ".join(build), flush=True)
            if subprocess.run(build, cwd=ROOT).returncode != 0:
                sys.exit(f"{' '.join(build)} failed")
    for b in ("rollbackd", "rollbackd-demo-service"):
        if not os.access(os.path.join(bins, b), os.X_OK):
            sys.exit(f"{bins}/{b} is missing: swift build -c release")
    return bins


class Fixture(SymlinkReleases):
    """Releases v1 (good) and v2 (60 % errors, or bad_rate), `current`, and two demo-service instances."""

    def __init__(self, name, base, bins, bad_rate=0.6):
        self.name = name
        self.dir = os.path.join(base, name)
        for v, rate in (("v1", 0.0), ("v2", bad_rate)):
            os.makedirs(os.path.join(self.dir, "releases", v))
            with open(os.path.join(self.dir, "releases", v, "release.json"), "w") as f:
                json.dump({"version": v, "errorRate": rate, "latencyMs": 5}, f)
        self.link = os.path.join(self.dir, "current")
        os.symlink(self.release("v1"), self.link)
        self.ports = [free_port(), free_port()]
        for port in self.ports:
            spawn([os.path.join(bins, "rollbackd-demo-service"), "--port", str(port), "--release-dir", self.link],
                  os.path.join(self.dir, f"service-{port}.log"))
        for port in self.ports:
            wait_until(f"demo service on {port}", 10, lambda: http_get(f"http://127.0.0.1:{port}/healthz"))

    def targets(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def buckets_path(self, base):
        return os.path.join(base, "load", self.name + ".buckets")


def read_buckets(path):
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                out[int(parts[0])] = (int(parts[1]), int(parts[2]))
    return out


def measure(buckets_path, t0, swapped_at, until):
    """(recovery s, last failed request's bucket end s, requests, failures) relative to t0, from the buckets in
    [t0 - WINDOW, until]. Recovery: the end of the last trailing 1 s window whose error ratio is >= 1 %."""
    deadline = time.monotonic() + 10
    last_needed = int(until / BUCKET)
    while True:
        b = read_buckets(buckets_path)
        if b and max(b) >= last_needed:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the load generator has not written buckets up to {until:.2f} ({buckets_path})")
        time.sleep(0.25)
    first = int(t0 / BUCKET)
    per = int(WINDOW / BUCKET)
    last_bad_end = None
    last_error_end = None
    requests = failures = 0
    for i in range(first, last_needed + 1):
        total, errors = b.get(i, (0, 0))
        requests += total
        failures += errors
        if errors:
            last_error_end = (i + 1) * BUCKET
        win = [b.get(j, (0, 0)) for j in range(i - per + 1, i + 1)]
        wt, we = sum(x[0] for x in win), sum(x[1] for x in win)
        if wt == 0 or we / wt >= 0.01:  # no answer at all counts as not recovered
            last_bad_end = (i + 1) * BUCKET
    rec = None if last_bad_end is None else max(0.0, last_bad_end - t0)
    last_err = None if last_error_end is None else max(0.0, last_error_end - t0)
    return rec, last_err, requests, failures


# ---------------------------------------------------------------- rollbackd

def duration(seconds):
    return f"{seconds:g}s" if seconds >= 1 and float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


class Rollbackd:
    """A trigger with `rb_breaches` (consecutive samples) or, without it, `rb_confidence` (the sequential test)."""

    def __init__(self, base, bins, fixture, s, name="rollbackd"):
        self.base, self.bins, self.fx, self.s, self.name = base, bins, fixture, s, name
        self.interval = s["rb_interval"]
        self.desc = (f"interval {duration(s['rb_interval'])}, breaches {s['rb_breaches']}, window {s['rb_window']}s"
                     if "rb_breaches" in s else
                     f"evidence: interval {duration(s['rb_interval'])}, confidence {s['rb_confidence']}, no "
                     f"breaches/clears, window {s['rb_window']}s")
        self.proc = None
        self.drill_no = 0

    def trigger(self):
        t = {"name": "critical-error-rate", "metric": "error_rate", "condition": {"above": 0.10},
             "severity": "critical", "respondWithin": "2m", "automation": "full"}
        if "rb_breaches" in self.s:
            t.update(breaches=self.s["rb_breaches"], clears=self.s["rb_breaches"])
        else:
            t.update(confidence=self.s["rb_confidence"])
        return t

    def config(self):
        s = self.s
        return {
            "service": "demo", "interval": duration(s["rb_interval"]), "automation": "full",
            "instances": [f"http://127.0.0.1:{p}" for p in self.fx.ports],
            "metrics": {"error_rate": {
                "type": "scrape", "path": "/metrics", "measure": "errorRatio", "counter": "http_requests_total",
                "errorLabels": {"code": "5.."}, "window": f"{s['rb_window']}s"}},
            "triggers": [self.trigger()],
            "rollback": {"strategy": "symlink",
                         "symlink": {"releasesDir": os.path.join(self.fx.dir, "releases"), "currentLink": self.fx.link}},
            # safety: the shipped defaults (soak 30m, cooldown 10m, budget 2/24h, verifyFor 2m); v1 is made
            # known-good with `mark-known-good` instead of a 30 min soak.
        }

    def control(self, command, **fields):
        return control(self.socket, command, **fields)

    def prepare(self):
        """A fresh daemon with a fresh state directory; returns when v1 is known-good and a full window of
        clean samples is behind it."""
        stop(self.proc)
        self.drill_no += 1
        d = os.path.join(self.fx.dir, f"drill{self.drill_no}")
        os.makedirs(d)
        cfg = os.path.join(d, "thresholds.json")
        with open(cfg, "w") as f:
            json.dump(self.config(), f)
        os.chmod(cfg, 0o644)
        self.socket = os.path.join(d, "control.sock")
        self.log = os.path.join(d, "daemon.log")
        started = time.monotonic()
        self.proc = spawn([os.path.join(self.bins, "rollbackd"), "run", "--config", cfg, "--state-dir",
                           os.path.join(d, "state"), "--socket", self.socket, "--log-target", "stderr"], self.log)
        wait_until("rollbackd: v1 live", 60,
                   lambda: self.control("status").get("report", {}).get("current") == "v1")
        answer = self.control("mark-known-good", version="v1")
        if self.control("status").get("report", {}).get("knownGood") != "v1":
            raise RuntimeError(f"rollbackd mark-known-good v1 failed: {answer}")
        warm = self.s["rb_window"] + 2 * self.s["rb_interval"]
        time.sleep(max(0.0, started + warm - time.monotonic()))
        if self.proc.poll() is not None:
            raise RuntimeError(f"rollbackd exited; see {self.log}")

    def finish(self):
        stop(self.proc)
        self.proc = None

    def log_lines(self, word):
        with open(self.log, errors="replace") as f:
            return [line for line in f if word in line]


# ---------------------------------------------------------------- Prometheus + Alertmanager

class PromAM:
    """One Prometheus and one Alertmanager guarding `fixtures`, each scraped as its own job (the fixture's name);
    the rule is evaluated per job. With swap, the webhook receiver swaps the (single) fixture back to v1; without,
    it only logs the notifications (the false-alert watch)."""

    def __init__(self, base, fixtures, s, name="prometheus+alertmanager", swap=True):
        self.base, self.fixtures, self.s, self.name = base, fixtures, s, name
        self.fx = fixtures[0]
        self.interval = seconds(s["prom_eval"])
        self.desc = (f"scrape/eval {s['prom_scrape']}, `rate[{s['prom_range']}]`, `for: {s['prom_for']}`, "
                     f"group_wait {s['am_group_wait']}")
        self.dir = os.path.join(base, f"prom-{fixtures[0].name}")
        os.makedirs(self.dir)
        self.prom_port, self.am_port, self.hook_port = free_port(), free_port(), free_port()
        r = s["prom_range"]
        # Per job, the 5xx rate over the rate of all requests; 0 (not nothing) when a job has no 5xx series yet.
        self.expr = (f'(sum by (job) (rate(http_requests_total{{code=~"5.."}}[{r}]))'
                     f' or 0 * sum by (job) (rate(http_requests_total[{r}])))'
                     f' / sum by (job) (rate(http_requests_total[{r}]))')
        with open(os.path.join(self.dir, "rules.yml"), "w") as f:
            f.write(f"""groups:
  - name: rollback
    rules:
      - alert: CriticalErrorRate
        expr: {self.expr} > 0.1
        for: {s['prom_for']}
        labels:
          severity: critical
""")
        jobs = "".join(f"""  - job_name: {fx.name}
    static_configs:
      - targets: [{", ".join(f'"127.0.0.1:{p}"' for p in fx.ports)}]
""" for fx in fixtures)
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: {s['prom_scrape']}
  scrape_timeout: {s['prom_scrape'] if seconds(s['prom_scrape']) < 10 else '10s'}
  evaluation_interval: {s['prom_eval']}
rule_files: ["{self.dir}/rules.yml"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{self.am_port}"]
scrape_configs:
{jobs}""")
        with open(os.path.join(self.dir, "alertmanager.yml"), "w") as f:
            f.write(f"""route:
  receiver: rollback
  group_by: [alertname, job]
  group_wait: {s['am_group_wait']}
  group_interval: {s['am_group_interval']}
receivers:
  - name: rollback
    webhook_configs:
      - url: http://127.0.0.1:{self.hook_port}/
        send_resolved: false
""")
        hook = (["--link", self.fx.link, "--target", self.fx.release("v1")] if swap else ["--log-only"])
        self.hook_log = os.path.join(self.dir, "webhook.log")
        self.hook = spawn([sys.executable, os.path.join(HERE, "webhook_swap.py"), "--port", str(self.hook_port), *hook],
                          self.hook_log)
        self.prom = spawn(["prometheus", f"--config.file={self.dir}/prometheus.yml",
                           f"--storage.tsdb.path={self.dir}/tsdb", f"--web.listen-address=127.0.0.1:{self.prom_port}"],
                          os.path.join(self.dir, "prometheus.log"))
        wait_until("prometheus ready", 60, lambda: http_get(f"http://127.0.0.1:{self.prom_port}/-/ready"))
        self.started = time.monotonic()
        self.am = None
        self.am_no = 0

    def query(self, q):
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        return json.loads(http_get(url))["data"]["result"]

    def query_range(self, q, start, end, step):
        url = (f"http://127.0.0.1:{self.prom_port}/api/v1/query_range?"
               + urllib.parse.urlencode({"query": q, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step}))
        return json.loads(http_get(url, timeout=30))["data"]["result"]

    def ratio(self):
        r = self.query(self.expr)
        return float(r[0]["value"][1]) if r else 0.0

    def alert_active(self):
        return bool(json.loads(http_get(f"http://127.0.0.1:{self.prom_port}/api/v1/alerts"))["data"]["alerts"])

    def ready(self):
        """True when a drill may start: Prometheus has a full window of history, the rule is inactive and its
        expression is under 1 % (the previous drill's errors have left the window)."""
        if time.monotonic() - self.started < self.s["prom_warmup"]:
            return False
        try:
            r = self.ratio()
            return r == r and r < 0.01 and not self.alert_active()  # r == r: not NaN
        except (OSError, ValueError, KeyError):
            return False

    def prepare(self):
        wait_until("prometheus: clean window and inactive alert", 900, self.ready, interval=1)
        self.start_am()

    def start_am(self):
        """A fresh Alertmanager with an empty data directory (so its notification log suppresses nothing)."""
        stop(self.am)
        self.am_no += 1
        data = os.path.join(self.dir, f"am{self.am_no}")
        self.am = spawn(["prometheus-alertmanager", f"--config.file={self.dir}/alertmanager.yml",
                         f"--storage.path={data}", f"--web.listen-address=127.0.0.1:{self.am_port}",
                         "--cluster.listen-address="], os.path.join(self.dir, f"alertmanager{self.am_no}.log"))
        wait_until("alertmanager ready", 30, lambda: http_get(f"http://127.0.0.1:{self.am_port}/-/ready"))

    def finish(self):
        pass


def drill(tool, fixture, base, timeout, interval):
    tool.prepare()
    t0, swapped = fixture.deploy_bad_and_wait(interval, timeout, poll=0.02)
    until = (swapped if swapped is not None else time.monotonic()) + 5
    time.sleep(max(0.0, until - time.monotonic()))
    tool.finish()
    rec, last_err, requests, failures = measure(fixture.buckets_path(base), t0, swapped, until)
    return {"swap": None if swapped is None else swapped - t0, "recovery": rec if swapped else None,
            "last_error": last_err, "requests": requests, "failures": failures}


def fmt(x):
    return "—" if x is None else f"{x:.2f}"


def summary(rows):
    vals = [r["recovery"] for r in rows]
    ok = [v for v in vals if v is not None]
    med = statistics.median(ok) if ok else None
    worst = None if (not ok or len(ok) < len(vals)) else max(ok)
    return med, worst


def start_load(fixtures, base, load_dirs, label):
    """One load generator process per fixture (300 requests/s in one Python process would contend for its GIL)."""
    for fx in fixtures:
        load = spawn([sys.executable, os.path.join(HERE, "loadgen.py"), "--rate", str(LOAD_RATE), "--out", load_dirs,
                      f"{fx.name}={fx.targets()}"], os.path.join(base, f"loadgen-{label}-{fx.name}.log"),
                     stdout=subprocess.PIPE)
        if load.stdout.readline().strip() != b"READY":
            raise RuntimeError("the load generator did not start")


def run_drills(label, plan, base, timeout):
    """plan: [(tool, fixture, drills, phase interval)]. Drills alternate over the tools in plan order; a Prometheus
    that is not ready yet (its window still holds the last drill's errors) lets the next tool go first."""
    results = {tool.name: [] for tool, _, _, _ in plan}
    started = time.monotonic()
    print(f"\n[{label}] " + ", ".join(f"{n} {tool.name} drills" for tool, _, n, _ in plan), flush=True)
    turn = 0
    while True:
        due = [i for i, (tool, _, n, _) in enumerate(plan) if len(results[tool.name]) < n]
        if not due:
            break
        order = [(turn + k) % len(plan) for k in range(len(plan))]
        pick = None
        for i in order:
            if i in due and (not isinstance(plan[i][0], PromAM) or plan[i][0].ready() or len(due) == 1):
                pick = i
                break
        if pick is None:  # only Prometheus drills are due, none ready: wait for the next one in turn
            pick = next(i for i in order if i in due)
        tool, fx, _, interval = plan[pick]
        turn = (pick + 1) % len(plan)
        r = drill(tool, fx, base, timeout, interval)
        results[tool.name].append(r)
        print(f"  {tool.name:40} drill {len(results[tool.name]):2}: swap back {fmt(r['swap'])} s, "
              f"last failure {fmt(r['last_error'])} s, recovered {fmt(r['recovery'])} s "
              f"({r['failures']}/{r['requests']} failed)  [{(time.monotonic() - started) / 60:.1f} min]", flush=True)
    return results


def run_setting(name, args, bins, base, load_dirs):
    s = SETTINGS[name]
    fx_rb = Fixture(f"{name}-rollbackd", base, bins)
    fx_pm = Fixture(f"{name}-prometheus", base, bins)
    start_load([fx_rb, fx_pm], base, load_dirs, name)
    rb = Rollbackd(base, bins, fx_rb, s)
    pm = PromAM(base, [fx_pm], s)
    n_pm = args.drills if name == "tight" else min(args.drills, args.prom_default_drills)
    results = run_drills(name, [(rb, fx_rb, args.drills, s["rb_interval"]), (pm, fx_pm, n_pm, s["rb_interval"])],
                         base, s["timeout"])
    return results, {rb.name: rb.desc, pm.name: pm.desc}


def run_evidence(args, bins, base, load_dirs):
    """rollbackd's evidence rule at 250ms against Prometheus + Alertmanager at tight (1s) and at 250ms."""
    fx_rb = Fixture("evidence-rollbackd", base, bins)
    fx_t = Fixture("evidence-prom-tight", base, bins)
    fx_f = Fixture("evidence-prom-250ms", base, bins)
    start_load([fx_rb, fx_t, fx_f], base, load_dirs, "evidence")
    rb = Rollbackd(base, bins, fx_rb, RB_EVIDENCE, name="rollbackd evidence 250ms")
    pt = PromAM(base, [fx_t], SETTINGS["tight"], name="prometheus+alertmanager tight 1s")
    pf = PromAM(base, [fx_f], PROM_FAST, name="prometheus+alertmanager 250ms")
    plan = [(rb, fx_rb, args.drills, rb.interval), (pt, fx_t, args.drills, pt.interval),
            (pf, fx_f, args.drills, pf.interval)]
    return run_drills("evidence", plan, base, EVIDENCE_TIMEOUT), {t.name: t.desc for t, _, _, _ in plan}


def episodes(values, step):
    """The number of runs of consecutive timestamps (at most 1.5 steps apart) in a query_range series."""
    n, last = 0, None
    for t, _ in values:
        t = float(t)
        if last is None or t - last > 1.5 * step:
            n += 1
        last = t
    return n


def run_quiet(args, bins, base, load_dirs):
    """A healthy release (3 % errors, bound 10 %) at 0.3 requests/s: false rollbacks and false alerts."""
    n = args.quiet_fixtures
    fx_rb = [Fixture(f"quiet-rollbackd-{i + 1}", base, bins, QUIET_ERROR_RATE) for i in range(n)]
    fx_f = [Fixture(f"quiet-prom-250ms-{i + 1}", base, bins, QUIET_ERROR_RATE) for i in range(n)]
    fx_t = [Fixture(f"quiet-prom-tight-{i + 1}", base, bins, QUIET_ERROR_RATE) for i in range(n)]
    every = fx_rb + fx_f + fx_t
    load = spawn([sys.executable, os.path.join(ROOT, "Benchmarks", "decisions", "loadgen.py"), "--out", load_dirs]
                 + [f"{fx.name}:{QUIET_RATE}=" + fx.targets() for fx in every],
                 os.path.join(base, "loadgen-quiet.log"), stdout=subprocess.PIPE)
    if load.stdout.readline().strip() != b"READY":
        raise RuntimeError("the load generator did not start")
    proms = [PromAM(base, fx_f, PROM_FAST, name="prometheus+alertmanager 250ms", swap=False),
             PromAM(base, fx_t, SETTINGS["tight"], name="prometheus+alertmanager tight 1s", swap=False)]
    for pm in proms:
        pm.start_am()
    rbs = [Rollbackd(base, bins, fx, RB_EVIDENCE, name="rollbackd evidence 250ms") for fx in fx_rb]
    for rb in rbs:
        rb.prepare()
    for pm in proms:
        wait_until(f"{pm.name}: warm-up", 60, lambda: time.monotonic() - pm.started >= pm.s["prom_warmup"])
    watch = args.watch_min * 60
    print(f"\n[quiet] deploying v2 ({QUIET_ERROR_RATE:.0%} errors) on {len(every)} fixtures at {QUIET_RATE} "
          f"requests/s each; watching {args.watch_min:g} min", flush=True)
    t0, t0_wall = time.monotonic(), time.time()
    for fx in every:
        fx.deploy("v2")
    swapped = {}
    while time.monotonic() - t0 < watch:
        for fx in fx_rb:
            if fx.name not in swapped and fx.live() == "v1":
                swapped[fx.name] = time.monotonic() - t0
                print(f"  {fx.name}: rolled back {swapped[fx.name]:.1f} s after the deploy", flush=True)
        time.sleep(0.05)
    end_wall = t0_wall + watch
    for rb in rbs:
        rb.finish()
    time.sleep(3)  # the load generator's last answers flushed
    out = {"watch_s": watch, "rate": QUIET_RATE, "error_rate": QUIET_ERROR_RATE, "tools": {}}
    rows = []
    for rb in rbs:
        fx = rb.fx
        until = swapped.get(fx.name, watch) + t0
        reqs = [r for r in read_requests(os.path.join(load_dirs, fx.name + ".requests")) if t0 <= r[0] <= until]
        rows.append({"fixture": fx.name, "rolled_back_at": swapped.get(fx.name), "requests": len(reqs),
                     "failures": sum(1 for r in reqs if not r[2]),
                     "insufficient_evidence": [line.strip()[:300]
                                               for line in rb.log_lines("insufficient evidence")][:3],
                     "firing": [line.strip()[:400] for line in rb.log_lines("trigger_firing")][:3]})
    out["tools"][rbs[0].name] = {"desc": rbs[0].desc, "fixtures": rows}
    for pm in proms:
        step = seconds(pm.s["prom_eval"])
        notes = []
        with open(pm.hook_log) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4 and parts[0] == "NOTIFY" and parts[2] == "firing":
                    notes.append((float(parts[1]) - t0, parts[3].split(",")))
        expr = {r["metric"].get("job"): r["values"] for r in pm.query_range(pm.expr, t0_wall, end_wall, step)}
        alerts = pm.query_range('ALERTS{alertname="CriticalErrorRate"}', t0_wall, end_wall, step)
        steps = int(watch / step) + 1
        # A 5xx series appears with its first error (the demo service, like many, exports no zero-valued code
        # series), and rate() needs two samples of a series: each instance's first 5xx is invisible to the rule.
        with_5xx = {r["metric"].get("job"): int(float(r["value"][1]))
                    for r in pm.query('count by (job) (http_requests_total{code=~"5.."})')}
        rows = []
        for fx in pm.fixtures:
            vals = [float(v) for _, v in expr.get(fx.name, [])]
            reqs = [r for r in read_requests(os.path.join(load_dirs, fx.name + ".requests"))
                    if t0 <= r[0] <= t0 + watch]
            hits = [t for t, jobs in notes if fx.name in jobs and 0 <= t <= watch]
            rows.append({
                "fixture": fx.name, "requests": len(reqs), "failures": sum(1 for r in reqs if not r[2]),
                "notifications": len(hits), "first_notification": min(hits) if hits else None,
                "notification_times": hits,
                "firing_episodes": sum(episodes(a["values"], step) for a in alerts if a["metric"].get("job") == fx.name
                                       and a["metric"].get("alertstate") == "firing"),
                "pending_episodes": sum(episodes(a["values"], step) for a in alerts if a["metric"].get("job") == fx.name
                                        and a["metric"].get("alertstate") == "pending"),
                "steps": steps, "steps_no_value": steps - len(vals), "steps_nan": sum(1 for v in vals if v != v),
                "steps_above": sum(1 for v in vals if v == v and v > 0.1),
                "steps_zero": sum(1 for v in vals if v == 0),
                "instances_with_5xx_series": with_5xx.get(fx.name, 0)})
        out["tools"][pm.name] = {"desc": pm.desc, "fixtures": rows}
    stop(load)
    return out


def quiet_table(q):
    watch = q["watch_s"]
    lines = [f"\n### quiet: a healthy release ({q['error_rate']:.0%} errors, bound 10 %) at {q['rate']} requests/s, "
             f"{watch / 60:g} min per fixture\n",
             "| tool | settings | fixtures | false rollbacks (first alert/rollback after the deploy, s) | alerts that "
             "reached the webhook, per fixture | firing episodes per fixture (Prometheus) "
             "| requests / failed per fixture |",
             "|---|---|---|---|---|---|---|"]
    detail = []
    for name, t in q["tools"].items():
        rows = t["fixtures"]
        if "notifications" in rows[0]:
            firsts = [r["first_notification"] for r in rows]
            notes = ", ".join(str(r["notifications"]) for r in rows)
            fire = ", ".join(str(r["firing_episodes"]) for r in rows)
            for r in rows:
                detail.append(f"- {r['fixture']}: expression at {r['steps']} evaluation steps: no value "
                              f"{r['steps_no_value']}, NaN (0/0: no request in the window) {r['steps_nan']}, 0 "
                              f"{r['steps_zero']}, above 10 % {r['steps_above']}; pending episodes "
                              f"{r['pending_episodes']}, firing {r['firing_episodes']}; instances whose first 5xx "
                              f"(invisible to rate()) created the series {r['instances_with_5xx_series']}; "
                              f"notifications at (s) "
                              f"{', '.join(f'{x:.0f}' for x in r['notification_times']) or '—'}")
        else:
            firsts = [r["rolled_back_at"] for r in rows]
            notes = "— (rollbacks: " + ", ".join("1" if r["rolled_back_at"] is not None else "0" for r in rows) + ")"
            fire = "—"
            for r in rows:
                detail.append(f"- {r['fixture']}: rolled back {fmt(r['rolled_back_at'])}; "
                              f"{len(r['insufficient_evidence'])} 'insufficient evidence' notes"
                              + (f" (first: {r['insufficient_evidence'][0][-160:]})"
                                 if r["insufficient_evidence"] else ""))
        hit = [x for x in firsts if x is not None]
        lines.append(f"| {name} | {t['desc']} | {len(rows)} | **{len(hit)} of {len(rows)}** "
                     f"({', '.join(f'{x:.0f}' for x in sorted(hit)) or '—'}) | {notes} | {fire} | "
                     f"{', '.join(str(r['requests']) + ' / ' + str(r['failures']) for r in rows)} |")
    return "\n".join(lines) + "\n\n" + "\n".join(detail)


def table(name, results, desc):
    lines = [f"\n### {name}\n",
             "| tool | settings | drills | recovery median | recovery worst | swap back median (worst) | failed requests per drill, median |",
             "|---|---|---|---|---|---|---|"]
    drills = []
    for tool, rows in results.items():
        if not rows:
            continue
        med, worst = summary(rows)
        swaps = [r["swap"] for r in rows if r["swap"] is not None]
        lines.append(f"| {tool} | {desc[tool]} | {len(rows)} | **{fmt(med)} s** | {fmt(worst)} s | "
                     f"{fmt(statistics.median(swaps) if swaps else None)} s ({fmt(max(swaps) if swaps else None)} s) | "
                     f"{statistics.median([r['failures'] for r in rows]):.0f} |")
        drills.append(f"- {tool}, recovery (s): {', '.join(fmt(r['recovery']) for r in rows)}; "
                      f"swap back (s): {', '.join(fmt(r['swap']) for r in rows)}; "
                      f"failed requests: {', '.join(str(r['failures']) for r in rows)}")
    return "\n".join(lines) + "\n\nAll drills, in order (— = no rollback within the timeout):\n\n" + "\n".join(drills)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setting", choices=["tight", "defaults", "both", "evidence", "quiet"], default="both",
                    help="both = tight, then defaults")
    ap.add_argument("--drills", type=int, default=10)
    ap.add_argument("--prom-default-drills", type=int, default=3,
                    help="Prometheus+Alertmanager drills in the defaults setting (each takes ~9 min with its reset)")
    ap.add_argument("--quiet-fixtures", type=int, default=4, help="quiet: fixtures per tool")
    ap.add_argument("--watch-min", type=float, default=10, help="quiet: minutes the fixtures are watched")
    ap.add_argument("--no-build", action="store_true", help="use the existing .build/release binaries")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    ap.add_argument("--json", help="also write all drills as JSON to this file")
    args = ap.parse_args()
    bins = ensure_prerequisites(args)
    base = tempfile.mkdtemp(prefix="rollbackd-recovery-")
    load_dirs = os.path.join(base, "load")
    os.makedirs(load_dirs)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    print(f"work directory {base}", flush=True)
    # Private copies: a rebuild during the run must not swap the binaries under it.
    os.makedirs(os.path.join(base, "bin"))
    for b in ("rollbackd", "rollbackd-demo-service"):
        shutil.copy2(os.path.join(bins, b), os.path.join(base, "bin", b))
    bins = os.path.join(base, "bin")
    print(tool_version(["prometheus", "--version"]), "|", tool_version(["prometheus-alertmanager", "--version"]), flush=True)
    out, tables = {}, []
    try:
        for name in (["tight", "defaults"] if args.setting == "both" else [args.setting]):
            if name == "quiet":
                out[name] = run_quiet(args, bins, base, load_dirs)
                tables.append(quiet_table(out[name]))
            else:
                results, desc = (run_evidence(args, bins, base, load_dirs) if name == "evidence"
                                 else run_setting(name, args, bins, base, load_dirs))
                out[name] = {"settings": desc, "drills": results}
                tables.append(table(name, results, desc))
            print(tables[-1], flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        cleanup()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"logs kept in {base}")
    if len(tables) > 1:
        print("\n".join(tables))


if __name__ == "__main__":
    main()
