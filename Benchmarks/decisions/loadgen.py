#!/usr/bin/env python3
"""The independent load generator of the decisions benchmark: Poisson traffic to each group of instances at its
own rate (0.3 requests/s as well as 100), and every request's outcome logged with its times on the monotonic clock
(CLOCK_MONOTONIC, the clock the driver reads when it deploys and when it sees the swap back).

    loadgen.py --out DIR NAME:RATE=HOST:PORT,HOST:PORT [NAME:RATE=...]

For each group NAME it sends GET /api/x at RATE requests per second in total, with exponentially distributed
gaps (a Poisson process, so 0.3/s is 0.3/s on average with the clumps and droughts real low traffic has), one new
connection per request (the demo service closes each), round-robin over the group's instances. A request fails
when the answer is not 2xx or there is none within 2 s. Requests are sent from a pool of threads, so a slow answer
never delays the next send. Each finished request is appended to DIR/NAME.requests as a line
"SENT_AT ANSWERED_AT OK" (monotonic seconds, OK 1 or 0); the file is flushed every 0.25 s.
Prints READY once the groups are running; stops when its parent goes away.
"""
import argparse
import concurrent.futures
import http.client
import os
import random
import threading
import time


class Group:
    def __init__(self, name, rate, targets, out_dir):
        self.name, self.rate, self.targets = name, rate, targets
        self.lock = threading.Lock()
        self.lines = []
        self.path = os.path.join(out_dir, name + ".requests")
        open(self.path, "w").close()
        self.k = 0

    def target(self):
        with self.lock:
            t = self.targets[self.k % len(self.targets)]
            self.k += 1
            return t

    def record(self, sent, answered, ok):
        with self.lock:
            self.lines.append(f"{sent:.6f} {answered:.6f} {1 if ok else 0}\n")

    def flush(self):
        with self.lock:
            lines, self.lines = self.lines, []
        if lines:
            with open(self.path, "a") as f:
                f.write("".join(lines))


def request(group):
    host, port = group.target()
    sent = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/api/x")
        r = conn.getresponse()
        r.read()
        ok = 200 <= r.status < 300
    except (OSError, http.client.HTTPException):
        ok = False
    finally:
        conn.close()
    group.record(sent, time.monotonic(), ok)


def pace(group, pool, parent, rng):
    nxt = time.monotonic() + rng.expovariate(group.rate)
    while os.getppid() == parent:
        now = time.monotonic()
        if nxt > now:
            time.sleep(min(nxt - now, 1.0))
            continue
        pool.submit(request, group)
        nxt += rng.expovariate(group.rate)
        if nxt < time.monotonic() - 1.0:  # far behind (machine stalled): do not burst to catch up
            nxt = time.monotonic()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--workers", type=int, default=32, help="threads that send requests, shared by the groups")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("groups", nargs="+", help="NAME:RATE=HOST:PORT,HOST:PORT")
    args = ap.parse_args()
    parent = os.getppid()
    rng = random.Random(args.seed)
    groups = []
    for spec in args.groups:
        head, _, targets = spec.partition("=")
        name, _, rate = head.partition(":")
        hosts = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in targets.split(",")]
        groups.append(Group(name, float(rate), hosts, args.out))
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.workers)
    for g in groups:
        threading.Thread(target=pace, args=(g, pool, parent, random.Random(rng.random())), daemon=True).start()
    print("READY", flush=True)
    while os.getppid() == parent:
        time.sleep(0.25)
        for g in groups:
            g.flush()
    for g in groups:
        g.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
