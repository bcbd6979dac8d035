#!/usr/bin/env python3
"""Fleet mode (issue 20): how fast a fleet rolls back, how fast a leader is replaced, what it costs etcd. Not run by
`make test`.

    python3 Benchmarks/fleet/run.py [--drills 5] [--failovers 5] [--simulated 47] [--measure 20]
                                    [--binary .build/release/rollbackd] [--parts a,b,c,d] [--json out.json]

A real 3-member etcd (Debian's etcd 3.4) on loopback, and three real hosts h0..h2: each its own `rollbackd run`
(release build when present) with its own state directory, `rollbackd-demo-service` instance, release tree (v1 good,
v2, v3, ... bad: 30 % of API requests fail), traffic (Tests/Servers/traffic.py, ~20 requests/s) and telemetry
`/metrics`; the table is one `errors` metric (scrape, errorRatio, 3 s window) and its evidence trigger (above 10 %
at 99 %, full automation), interval 1 s, lease TTL 3 s, cooldown 0, verifyFor 5 s. Each host reaches etcd through a
counting TCP forwarder of this script (one per host, in front of all three members), which counts the HTTP requests
(`POST /v3/...`, by path) the host sends and the bytes etcd answers.

(a) 3 hosts: v1 is made known-good on the leader; a drill deploys the next bad release on every host at once (at a
    random phase of the 1 s tick) and times deploy -> the LAST host's `current` back on v1 (polled every 10 ms);
    the next drill starts when the leader has closed the incident and a window of v1 traffic has passed. Median
    of --drills.
(b) 50 hosts: the same drills with --simulated extra hosts (s000...) that are etcd clients of this script, one
    thread each: every 1 s each reads the fleet's control keys, renews its own lease and puts its HostReport (the
    JSON of RollbackCore's HostReport, as a real host writes it) under hosts/<name> bound to that lease. They run
    the drill's release like the real hosts (their counts: 20 requests a tick, 30 % errors on a bad release, none on
    v1), and when the fleet's decision names their release they report their part done (runs/<attempt>/<name>) and
    switch to the decision's target, like a host whose swap takes no time. Timed: deploy -> the last REAL host
    swapped back; and the leader's tick time (its `rollbackd_tick_duration_seconds` sum/count over --measure s)
    with 3 and with 50 hosts.
(c) failover: `kill -9` the leader; time until another host's log says it leads. --failovers times (the killed
    host is started again and rejoins before the next).
(d) etcd requests per tick per host: over --measure s of a quiet fleet (3 hosts, no drill), each host's request
    count (its forwarder) over its completed ticks (its telemetry), leader and followers apart, by path.
"""
import argparse
import base64
import json
import os
import random
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
from benchlib import SymlinkReleases, control, die_with_parent, free_port, stop, wait_until  # noqa: E402

TRAFFIC = os.path.join(ROOT, "Tests", "Servers", "traffic.py")
FLEET = "bench"
INTERVAL = 1.0
TTL = 3
PROCS = []


def spawn(argv, log):
    p = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         preexec_fn=die_with_parent)
    PROCS.append(p)
    return p


def http(method, url, body=None, timeout=5):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def prefix_end(key):
    b = bytearray(key.encode())
    b[-1] += 1
    return b64(bytes(b))


# ---------------------------------------------------------------------------------------------------------- etcd

class Etcd:
    """Three members of Debian's etcd on loopback, healthy before it returns."""

    def __init__(self, root, binary):
        self.dir = os.path.join(root, "etcd")
        os.makedirs(self.dir)
        self.client = [free_port() for _ in range(3)]
        self.peer = [free_port() for _ in range(3)]
        initial = ",".join(f"m{i}=http://127.0.0.1:{self.peer[i]}" for i in range(3))
        self.procs = []
        for i in range(3):
            self.procs.append(spawn([
                binary, "--name", f"m{i}", "--data-dir", os.path.join(self.dir, f"m{i}.etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{self.client[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.client[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[i]}",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", f"bench-{os.getpid()}", "--logger", "zap", "--log-outputs", "stderr",
            ], os.path.join(self.dir, f"m{i}.log")))
        for i in range(3):
            wait_until(f"etcd member m{i}", 30, lambda i=i: b'"true"' in http("GET", self.endpoint(i) + "/health"))

    def endpoint(self, i=0):
        return f"http://127.0.0.1:{self.client[i]}"

    def call(self, path, body):
        for i in range(3):
            try:
                return json.loads(http("POST", self.endpoint(i) + path, body))
            except OSError:
                continue
        raise RuntimeError(f"no etcd member answers {path}")

    def stop(self):
        for p in self.procs:
            stop(p)


class CountingProxy:
    """A TCP forwarder between one host and etcd (the first member that accepts): counts the host's HTTP requests
    by path and the bytes etcd sends back."""

    REQ = re.compile(rb"(?:GET|POST|PUT) (/v3/[a-z/]+)")

    def __init__(self, targets):
        self.targets = targets
        self.lock = threading.Lock()
        self.paths = {}
        self.bytes_back = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def snapshot(self):
        with self.lock:
            return dict(self.paths), self.bytes_back

    def accept(self):
        while True:
            c, _ = self.sock.accept()
            for port in self.targets:
                try:
                    u = socket.create_connection(("127.0.0.1", port), timeout=5)
                    u.settimeout(None)
                    break
                except OSError:
                    continue
            else:
                c.close()
                continue
            threading.Thread(target=self.up, args=(c, u), daemon=True).start()
            threading.Thread(target=self.down, args=(u, c), daemon=True).start()

    def up(self, src, dst):
        tail = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf = tail + data
                found = self.REQ.findall(buf)
                if found:
                    with self.lock:
                        for p in found:
                            k = p.decode()
                            self.paths[k] = self.paths.get(k, 0) + 1
                    last = list(self.REQ.finditer(buf))[-1]
                    tail = buf[last.end():][-64:]
                else:
                    tail = buf[-64:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def down(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    self.bytes_back += len(data)
                dst.sendall(data)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------------------- hosts

CONFIG = """{
  "service": "bench", "interval": "1s", "instances": ["http://127.0.0.1:%(port)d"],
  "metrics": {"errors": {"type": "scrape", "path": "/metrics", "measure": "errorRatio",
                         "counter": "http_requests_total", "errorLabels": {"code": "5.."}, "window": "3s"}},
  "triggers": [{"name": "critical-error-rate", "metric": "errors", "condition": {"above": 0.1}, "confidence": 0.99,
                "severity": "critical", "respondWithin": "2m", "automation": "full"}],
  "rollback": {"strategy": "symlink", "symlink": {"releasesDir": "%(dir)s/releases", "currentLink": "%(dir)s/current"}},
  "safety": {"cooldown": "0s", "budget": {"max": 100, "window": "1h"}, "deployWindow": "10m", "soak": "1h",
             "verifyFor": "5s", "baselineWindow": "30s"},
  "telemetry": {"listen": "127.0.0.1:%(telemetry)d"},
  "fleet": {"endpoints": ["http://127.0.0.1:%(proxy)d"], "name": "%(fleet)s", "host": "%(name)s", "leaseTTL": "%(ttl)ds"}
}
"""


class Host(SymlinkReleases):
    def __init__(self, root, name, binary, service, etcd, versions):
        self.name = name
        self.binary = binary
        self.dir = os.path.join(root, name)
        self.link = os.path.join(self.dir, "current")
        for v in versions:
            os.makedirs(self.release(v))
            with open(os.path.join(self.release(v), "release.json"), "w") as f:
                json.dump({"version": v, "errorRate": 0.0 if v == "v1" else 0.3, "latencyMs": 2}, f)
        os.symlink(self.release("v1"), self.link)
        self.port, self.telemetry = free_port(), free_port()
        self.proxy = CountingProxy(etcd.client)
        with open(os.path.join(self.dir, "thresholds.json"), "w") as f:
            f.write(CONFIG % dict(port=self.port, dir=self.dir, telemetry=self.telemetry, proxy=self.proxy.port,
                                  fleet=FLEET, name=name, ttl=TTL))
        self.logfile = os.path.join(self.dir, "daemon.log")
        self.socket = os.path.join(self.dir, "control.sock")
        spawn([service, "--port", str(self.port), "--release-dir", self.link], os.path.join(self.dir, "service.log"))
        url = f"http://127.0.0.1:{self.port}"
        wait_until(f"{name}'s service", 20, lambda: http("GET", url + "/healthz") is not None)
        spawn([sys.executable, TRAFFIC, url + "/api/x", "--burst", "1", "--every", "0.05"],
              os.path.join(self.dir, "traffic.log"))
        self.proc = None
        self.start()

    def start(self):
        self.proc = spawn([self.binary, "run", "--config", os.path.join(self.dir, "thresholds.json"),
                           "--state-dir", os.path.join(self.dir, "state"), "--socket", self.socket,
                           "--log-target", "stderr"], self.logfile)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def log(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def metrics(self):
        """(completed ticks, their summed duration in s) from the host's telemetry."""
        text = http("GET", f"http://127.0.0.1:{self.telemetry}/metrics").decode()
        count = total = 0.0
        for line in text.splitlines():
            if line.startswith("rollbackd_tick_duration_seconds_count"):
                count = float(line.split()[-1])
            elif line.startswith("rollbackd_tick_duration_seconds_sum"):
                total = float(line.split()[-1])
        return count, total


LEADS = re.compile(r"^(\S+) \S+ \S+ fleet_leader_elected: Host (\S+) leads the fleet", re.M)


def elections(hosts):
    """Every `leads the fleet` line of every host: (time text, host name), oldest first."""
    out = []
    for h in hosts:
        out += LEADS.findall(h.log())
    return sorted(out)


def leader(hosts):
    e = elections(hosts)
    if not e:
        return None
    return next(h for h in hosts if h.name == e[-1][1])


def count(hosts, text):
    return sum(h.log().count(text) for h in hosts)


# ---------------------------------------------------------------------------------------------------------- simulated

class Publisher(threading.Thread):
    """One simulated host: an etcd client that does what a follower does each tick (read the control keys, renew
    its lease, put its report) and carries out the fleet's decision instantly."""

    def __init__(self, etcd, name, fleet):
        super().__init__(daemon=True)
        self.etcd, self.name = etcd, name
        self.root = f"/rollbackd/fleets/{fleet}/"
        self.version = "v1"
        self.epoch = f"sim-{name}-{os.getpid()}"
        self.seq = 0
        self.ticks = []
        self.lease = None
        self.done = set()
        self.running = True
        self.errors = 0

    def report(self, now_ms):
        self.seq += 1
        trials = 20
        bad = self.version != "v1"
        events = sum(1 for _ in range(trials) if bad and random.random() < 0.3)
        self.ticks.append({"seq": self.seq, "at": {"millisecondsSinceEpoch": now_ms},
                           "counts": {"errors": {"events": events, "trials": trials}}, "histograms": {}})
        self.ticks = self.ticks[-8:]
        return {"host": self.name, "epoch": self.epoch, "at": {"millisecondsSinceEpoch": now_ms},
                "version": self.version, "samples": {"errors": {"value": {"_0": events / trials}}},
                "ticks": self.ticks, "deployable": None, "smokeFailures": [], "running": None}

    def tick(self):
        now_ms = int(time.time() * 1000)
        control = self.root + "control/"
        r = self.etcd.call("/v3/kv/range", {"key": b64(control), "range_end": prefix_end(control)})
        for kv in r.get("kvs", []):
            if base64.b64decode(kv["key"]).decode() != control + "decision":
                continue
            d = json.loads(base64.b64decode(kv["value"]))
            order = d["order"]
            if order["from"] == self.version and order["incident"] not in self.done:
                run = {"host": self.name, "incident": order["incident"], "state": "succeeded",
                       "detail": f"rolled back to {order['to']}", "at": {"millisecondsSinceEpoch": now_ms}}
                # runs/<incident>@<orderedAt ms>/<host>: RollbackOrder.attempt, one per decision of the incident.
                attempt = f"{order['incident']}@{order['orderedAt']['millisecondsSinceEpoch']}"
                self.etcd.call("/v3/kv/put", {"key": b64(self.root + f"runs/{attempt}/{self.name}"),
                                              "value": b64(json.dumps(run))})
                self.done.add(order["incident"])
                self.version = order["to"]
        if self.lease is not None:
            k = self.etcd.call("/v3/lease/keepalive", {"ID": self.lease})
            if int(k.get("result", {}).get("TTL", "0")) <= 0:
                self.lease = None
        if self.lease is None:
            self.lease = self.etcd.call("/v3/lease/grant", {"TTL": TTL})["ID"]
        self.etcd.call("/v3/kv/put", {"key": b64(self.root + "hosts/" + self.name),
                                      "value": b64(json.dumps(self.report(now_ms))), "lease": self.lease})

    def run(self):
        time.sleep(random.uniform(0, INTERVAL))
        nxt = time.monotonic()
        while self.running:
            try:
                self.tick()
            except (OSError, ValueError, KeyError, RuntimeError):
                self.errors += 1
            nxt += INTERVAL
            time.sleep(max(0, nxt - time.monotonic()))


# ---------------------------------------------------------------------------------------------------------- parts

class Fleet:
    def __init__(self, root, args, etcd, versions):
        self.hosts = [Host(root, f"h{i}", args.binary, args.service, etcd, versions) for i in range(3)]
        self.publishers = []
        wait_until("a leader", 60, lambda: leader(self.hosts) is not None)
        # v1 known-good for the fleet: an operator command the leader takes (followers refuse it).
        def marked():
            lead = leader(self.hosts)
            return lead is not None and control(lead.socket, "mark-known-good", version="v1").get("ok") is True
        wait_until("v1 known-good on the leader", 60, marked, interval=0.5)
        wait_until("release_known_good", 30, lambda: count(self.hosts, "release_known_good") >= 1)

    def drill(self, version):
        """Deploys `version` everywhere; returns (seconds to the last real host back on v1, per host) or None."""
        closed = count(self.hosts, "incident_closed:")
        time.sleep(random.uniform(0, INTERVAL))
        t0 = time.monotonic()
        for h in self.hosts:
            h.deploy(version)
        for p in self.publishers:
            p.version = version
        back = {}
        while time.monotonic() - t0 < 120 and len(back) < len(self.hosts):
            for h in self.hosts:
                if h.name not in back and h.live() == "v1":
                    back[h.name] = time.monotonic() - t0
            time.sleep(0.01)
        if len(back) < len(self.hosts):
            for h in self.hosts:
                h.deploy("v1")
            return None
        wait_until("the fleet's incident closed", 120, lambda: count(self.hosts, "incident_closed:") > closed)
        time.sleep(4)  # a window (3 s) of v1 traffic before the next drill
        return max(back.values()), back

    def tick_time(self, seconds):
        lead = leader(self.hosts)
        c0, s0 = lead.metrics()
        time.sleep(seconds)
        c1, s1 = lead.metrics()
        return lead.name, (s1 - s0) / max(c1 - c0, 1), int(c1 - c0)


def drills(fleet, n, first):
    out = []
    for k in range(n):
        r = fleet.drill(f"v{first + k}")
        print(f"  drill {k + 1}: " + ("no rollback within 120 s" if r is None else
                                      f"last host back on v1 after {r[0]:.2f} s (" +
                                      ", ".join(f"{h} {t:.2f}" for h, t in sorted(r[1].items())) + ")"),
              flush=True)
        out.append(r)
    return out


def requests_per_tick(fleet, seconds):
    before = [(h.proxy.snapshot(), h.metrics()[0]) for h in fleet.hosts]
    lead0 = leader(fleet.hosts)
    time.sleep(seconds)
    lead = leader(fleet.hosts)
    rows = []
    for h, ((p0, b0), t0) in zip(fleet.hosts, before):
        (p1, b1), t1 = h.proxy.snapshot(), h.metrics()[0]
        ticks = max(t1 - t0, 1)
        by = {k: (p1.get(k, 0) - p0.get(k, 0)) / ticks for k in sorted(set(p0) | set(p1))}
        rows.append({"host": h.name, "role": "leader" if h is lead and lead is lead0 else "follower",
                     "ticks": int(ticks), "requests": sum(by.values()), "byPath": by,
                     "bytesBack": (b1 - b0) / ticks})
    return rows


def failovers(fleet, n):
    out = []
    for k in range(n):
        lead = leader(fleet.hosts)
        seen = len(elections(fleet.hosts))
        t0 = time.monotonic()
        lead.kill9()
        def taken():
            e = elections(fleet.hosts)
            return len(e) > seen and e[-1][1] != lead.name
        wait_until("a new leader", 60, taken, interval=0.02)
        dt = time.monotonic() - t0
        print(f"  failover {k + 1}: {lead.name} killed, {leader(fleet.hosts).name} leads after {dt:.2f} s",
              flush=True)
        out.append(dt)
        lead.start()
        time.sleep(2 * TTL)  # it rejoins (a fresh daemon: a new lease and epoch) before the next kill
    return out


def summary(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "none"
    return (f"median {statistics.median(xs):.2f} s, min {min(xs):.2f}, max {max(xs):.2f} (n={len(xs)})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drills", type=int, default=5)
    ap.add_argument("--failovers", type=int, default=5)
    ap.add_argument("--simulated", type=int, default=47)
    ap.add_argument("--measure", type=float, default=20)
    ap.add_argument("--parts", default="a,b,c,d")
    ap.add_argument("--binary", default=None)
    ap.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.binary is None:
        rel = os.path.join(ROOT, ".build", "release", "rollbackd")
        args.binary = rel if os.path.exists(rel) else os.path.join(ROOT, ".build", "debug", "rollbackd")
    args.service = os.path.join(os.path.dirname(args.binary), "rollbackd-demo-service")
    for path in (args.binary, args.service, args.etcd):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is missing: `swift build` (or -c release) builds rollbackd and the demo service; "
                     "`apt-get install etcd-server` installs etcd")
    parts = set(args.parts.split(","))
    root = tempfile.mkdtemp(prefix="rollbackd-fleet-bench-")
    results = {"binary": args.binary, "interval": INTERVAL, "leaseTTL": TTL}
    etcd = None
    try:
        etcd = Etcd(root, args.etcd)
        n = 1 + 2 * args.drills + 1
        fleet = Fleet(root, args, etcd, ["v1"] + [f"v{k}" for k in range(2, n + 2)])
        print(f"fleet {FLEET}: 3 hosts, leader {leader(fleet.hosts).name}; binary {args.binary}", flush=True)
        time.sleep(4)
        if "d" in parts:
            rows = requests_per_tick(fleet, args.measure)
            results["requestsPerTick"] = rows
            print("(d) etcd requests per tick per host (quiet fleet of 3):")
            for r in rows:
                paths = ", ".join(f"{k} {v:.2f}" for k, v in r["byPath"].items() if v)
                print(f"  {r['host']} {r['role']:8}: {r['requests']:.2f} requests/tick over {r['ticks']} ticks "
                      f"({paths}); {r['bytesBack'] / 1024:.1f} KiB/tick back", flush=True)
        if "a" in parts or "b" in parts:
            lead, tick, ticks = fleet.tick_time(args.measure)
            results["leaderTick3"] = {"leader": lead, "seconds": tick, "ticks": ticks}
            print(f"leader {lead}'s tick with 3 hosts: {tick * 1000:.1f} ms (mean of {ticks})", flush=True)
        version = 2
        if "a" in parts:
            print("(a) 3 real hosts: deploy -> last host back on v1")
            r = drills(fleet, args.drills, version)
            version += args.drills
            results["threeHosts"] = [x[0] if x else None for x in r]
            print("  " + summary(results["threeHosts"]), flush=True)
        if "b" in parts:
            fleet.publishers = [Publisher(etcd, f"s{i:03d}", FLEET) for i in range(args.simulated)]
            for p in fleet.publishers:
                p.start()
            total = 3 + args.simulated
            wait_until(f"{total} hosts in the fleet", 60,
                       lambda: etcd.call("/v3/kv/range", {
                           "key": b64(f"/rollbackd/fleets/{FLEET}/hosts/"),
                           "range_end": prefix_end(f"/rollbackd/fleets/{FLEET}/hosts/"),
                           "count_only": True}).get("count", "0") == str(total))
            time.sleep(5)
            lead, tick, ticks = fleet.tick_time(args.measure)
            results["leaderTick50"] = {"leader": lead, "seconds": tick, "ticks": ticks, "hosts": total}
            print(f"leader {lead}'s tick with {total} hosts: {tick * 1000:.1f} ms (mean of {ticks})", flush=True)
            rows = requests_per_tick(fleet, args.measure)
            results["requestsPerTick50"] = rows
            for r in rows:
                print(f"  {r['host']} {r['role']:8}: {r['requests']:.2f} requests/tick, "
                      f"{r['bytesBack'] / 1024:.1f} KiB/tick back ({total} hosts)", flush=True)
            print(f"(b) {total} hosts (3 real, {args.simulated} simulated): deploy -> last REAL host back on v1")
            r = drills(fleet, args.drills, version)
            version += args.drills
            results["fiftyHosts"] = [x[0] if x else None for x in r]
            results["publisherErrors"] = sum(p.errors for p in fleet.publishers)
            print("  " + summary(results["fiftyHosts"]) + f"; simulated hosts' failed requests: "
                  f"{results['publisherErrors']}", flush=True)
            for p in fleet.publishers:
                p.running = False
            time.sleep(TTL + 2)
        if "c" in parts:
            print("(c) leader failover after kill -9 (lease TTL 3 s, interval 1 s)")
            results["failover"] = failovers(fleet, args.failovers)
            print("  " + summary(results["failover"]), flush=True)
    finally:
        for p in PROCS:
            stop(p)
        if etcd:
            etcd.stop()
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
