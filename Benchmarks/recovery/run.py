#!/usr/bin/env python3
"""Time to recovery (issue 7): rollbackd side by side with the do-it-yourself alternative, a real Prometheus and
Alertmanager (Debian packages) with an alert rule on the same metric and a webhook that runs the same symlink
swap. Not run by `make test`.

    python3 Benchmarks/recovery/run.py [--setting tight|defaults|both] [--drills 10] [--prom-default-drills 3]

Each tool guards its own copy of the same fixture: releases v1 (no errors) and v2 (60 % of /api requests fail),
a `current` symlink, two `rollbackd-demo-service` instances reading `current/release.json` (re-read every
second). One independent load generator (loadgen.py) sends 100 requests/s to each fixture all the time and
counts failures in 250 ms buckets. A drill: the fixture runs v1 with a full metric window of clean history, the
driver swaps `current` to v2 (time 0), and waits until the tool swaps it back to v1. Recovery is the first moment
after which the error ratio of the load generator's trailing 1 s window stays under 1 % (checked until 5 s after
the swap back; the window and the service's 1 s re-read add up to ~1 s to both tools alike).

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
  defaults  rollbackd's shipped thresholds.json: interval 5s, breaches 3, window 30s | Prometheus scrape/eval
            1m (its defaults), rate[5m], for 1m, Alertmanager defaults (group_wait 30s, group_interval 5m)
In `defaults` a Prometheus drill takes ~3-4 min and its errors need 5 min to leave the rate window, so fewer
Prometheus drills are run (--prom-default-drills) and rollbackd drills fill the waits.
"""
import argparse
import json
import os
import random
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
from benchlib import SymlinkReleases, control, die_with_parent, free_port, stop, wait_until  # noqa: E402
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

PROCS = []


def spawn(argv, log, env=None, stdout=None):
    p = subprocess.Popen(argv, stdout=stdout if stdout is not None else open(log, "ab"),
                         stderr=open(log, "ab"), env=env, preexec_fn=die_with_parent)
    PROCS.append(p)
    return p


def cleanup():
    for p in reversed(PROCS):
        stop(p)


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
            # --static-swift-stdlib: the binary `make release` ships (and the overhead benchmark measures).
            build = ["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", product]
            print(" ".join(build), flush=True)
            if subprocess.run(build, cwd=ROOT).returncode != 0:
                sys.exit(f"{' '.join(build)} failed")
    for b in ("rollbackd", "rollbackd-demo-service"):
        if not os.access(os.path.join(bins, b), os.X_OK):
            sys.exit(f"{bins}/{b} is missing: swift build -c release")
    return bins


class Fixture(SymlinkReleases):
    """Releases v1 (good) and v2 (bad), `current`, and two demo-service instances."""

    def __init__(self, name, base, bins):
        self.name = name
        self.dir = os.path.join(base, name)
        for v, rate in (("v1", 0.0), ("v2", 0.6)):
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

class Rollbackd:
    name = "rollbackd"

    def __init__(self, base, bins, fixture, s):
        self.base, self.bins, self.fx, self.s = base, bins, fixture, s
        self.proc = None
        self.drill_no = 0

    def config(self):
        s = self.s
        return {
            "service": "demo", "interval": f"{s['rb_interval']}s", "automation": "full",
            "instances": [f"http://127.0.0.1:{p}" for p in self.fx.ports],
            "metrics": {"error_rate": {
                "type": "scrape", "path": "/metrics", "measure": "errorRatio", "counter": "http_requests_total",
                "errorLabels": {"code": "5.."}, "window": f"{s['rb_window']}s"}},
            "triggers": [{"name": "critical-error-rate", "metric": "error_rate", "condition": {"above": 0.10},
                          "breaches": s["rb_breaches"], "clears": s["rb_breaches"], "severity": "critical",
                          "respondWithin": "2m", "automation": "full"}],
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


# ---------------------------------------------------------------- Prometheus + Alertmanager

class PromAM:
    name = "prometheus+alertmanager"

    def __init__(self, base, fixture, s):
        self.base, self.fx, self.s = base, fixture, s
        self.dir = os.path.join(fixture.dir, "prom")
        os.makedirs(self.dir)
        self.prom_port, self.am_port, self.hook_port = free_port(), free_port(), free_port()
        r = s["prom_range"]
        self.expr = (f'(sum(rate(http_requests_total{{job="demo",code=~"5.."}}[{r}])) or vector(0))'
                     f' / sum(rate(http_requests_total{{job="demo"}}[{r}]))')
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
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: {s['prom_scrape']}
  evaluation_interval: {s['prom_eval']}
rule_files: ["{self.dir}/rules.yml"]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:{self.am_port}"]
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: [{", ".join(f'"127.0.0.1:{p}"' for p in fixture.ports)}]
""")
        with open(os.path.join(self.dir, "alertmanager.yml"), "w") as f:
            f.write(f"""route:
  receiver: rollback
  group_by: [alertname]
  group_wait: {s['am_group_wait']}
  group_interval: {s['am_group_interval']}
receivers:
  - name: rollback
    webhook_configs:
      - url: http://127.0.0.1:{self.hook_port}/
        send_resolved: false
""")
        self.hook = spawn([sys.executable, os.path.join(HERE, "webhook_swap.py"), "--port", str(self.hook_port),
                           "--link", fixture.link, "--target", fixture.release("v1")],
                          os.path.join(self.dir, "webhook.log"))
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
    # Deploy at a random phase of the tool's schedule: a fresh daemon ticks at start + k * interval, and a deploy
    # locked to that would always land at the same point of its tick.
    time.sleep(random.uniform(0, interval))
    if fixture.live() != "v1":
        raise RuntimeError(f"{fixture.name}: {fixture.live()} is live before the drill")
    t0 = time.monotonic()
    fixture.deploy("v2")
    swapped = None
    while time.monotonic() - t0 < timeout:
        if fixture.live() == "v1":
            swapped = time.monotonic()
            break
        time.sleep(0.02)
    if swapped is None:
        fixture.deploy("v1")
        until = time.monotonic() + 5
    else:
        until = swapped + 5
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


def run_setting(name, args, bins, base, load_dirs):
    s = SETTINGS[name]
    fx_rb = Fixture(f"{name}-rollbackd", base, bins)
    fx_pm = Fixture(f"{name}-prometheus", base, bins)
    load = spawn([sys.executable, os.path.join(HERE, "loadgen.py"), "--rate", str(LOAD_RATE), "--out", load_dirs,
                  f"{fx_rb.name}={fx_rb.targets()}", f"{fx_pm.name}={fx_pm.targets()}"],
                 os.path.join(base, f"loadgen-{name}.log"), stdout=subprocess.PIPE)
    if load.stdout.readline().strip() != b"READY":
        raise RuntimeError("the load generator did not start")
    rb = Rollbackd(base, bins, fx_rb, s)
    pm = PromAM(base, fx_pm, s)
    n_rb = args.drills
    n_pm = args.drills if name == "tight" else min(args.drills, args.prom_default_drills)
    results = {"rollbackd": [], "prometheus+alertmanager": []}
    started = time.monotonic()
    print(f"\n[{name}] {n_rb} rollbackd drills, {n_pm} Prometheus+Alertmanager drills", flush=True)
    turn = "rollbackd"
    while len(results["rollbackd"]) < n_rb or len(results["prometheus+alertmanager"]) < n_pm:
        pm_due = len(results["prometheus+alertmanager"]) < n_pm
        rb_due = len(results["rollbackd"]) < n_rb
        # Alternate; a tool that is not ready yet (Prometheus' window still holds the last drill's errors)
        # lets the other one go first.
        if turn == "prometheus+alertmanager" and pm_due and (pm.ready() or not rb_due):
            tool, fx = pm, fx_pm
        elif rb_due:
            tool, fx = rb, fx_rb
        elif pm_due:
            tool, fx = pm, fx_pm
        turn = "rollbackd" if tool is pm else "prometheus+alertmanager"
        r = drill(tool, fx, base, s["timeout"], s["rb_interval"])
        results[tool.name].append(r)
        print(f"  {tool.name:24} drill {len(results[tool.name]):2}: swap back {fmt(r['swap'])} s, "
              f"last failure {fmt(r['last_error'])} s, recovered {fmt(r['recovery'])} s "
              f"({r['failures']}/{r['requests']} failed)  [{(time.monotonic() - started) / 60:.1f} min]", flush=True)
    stop(load)
    return results


def table(name, results):
    s = SETTINGS[name]
    desc = {"rollbackd": f"interval {s['rb_interval']}s, breaches {s['rb_breaches']}, window {s['rb_window']}s",
            "prometheus+alertmanager": f"scrape/eval {s['prom_scrape']}, `rate[{s['prom_range']}]`, `for: {s['prom_for']}`, "
                                       f"group_wait {s['am_group_wait']}"}
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
                      f"swap back (s): {', '.join(fmt(r['swap']) for r in rows)}")
    return "\n".join(lines) + "\n\nAll drills, in order (— = no rollback within the timeout):\n\n" + "\n".join(drills)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--setting", choices=["tight", "defaults", "both"], default="both")
    ap.add_argument("--drills", type=int, default=10)
    ap.add_argument("--prom-default-drills", type=int, default=3,
                    help="Prometheus+Alertmanager drills in the defaults setting (each takes ~9 min with its reset)")
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
    out = {}
    try:
        for name in (["tight", "defaults"] if args.setting == "both" else [args.setting]):
            out[name] = run_setting(name, args, bins, base, load_dirs)
            print(table(name, out[name]), flush=True)
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
    if len(out) > 1:
        print("\n".join(table(n, r) for n, r in out.items()))


if __name__ == "__main__":
    main()
