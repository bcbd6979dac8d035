#!/usr/bin/env python3
"""The independent load generator of the recovery benchmark: steady traffic to each group of instances, and the
outcome of every request counted in 250 ms buckets of the monotonic clock (CLOCK_MONOTONIC, the same clock the
driver uses to time the deploy).

    loadgen.py --rate 100 --out DIR GROUP=HOST:PORT,HOST:PORT [GROUP=...]

For each GROUP it sends `--rate` requests per second in total (GET /api/x, one new connection per request, as the
demo service closes each), spread round-robin over the group's instances by 4 paced threads, and appends
finished buckets to DIR/GROUP.buckets as lines "BUCKET_INDEX TOTAL ERRORS" (bucket i covers
[i*0.25 s, (i+1)*0.25 s) of time.monotonic(), by send time). A request fails when the answer is not 2xx or
there is none within 2 s. A bucket is written 2 s after it ends, when every request sent in it has finished.
Stops when its parent goes away.
"""
import argparse
import http.client
import os
import threading
import time

BUCKET = 0.25


class Group:
    def __init__(self, name, targets, out_dir):
        self.name = name
        self.targets = targets
        self.lock = threading.Lock()
        self.buckets = {}  # index -> [total, errors]
        self.path = os.path.join(out_dir, name + ".buckets")
        open(self.path, "w").close()
        self.written = None

    def record(self, sent_at, ok):
        i = int(sent_at / BUCKET)
        with self.lock:
            b = self.buckets.setdefault(i, [0, 0])
            b[0] += 1
            if not ok:
                b[1] += 1

    def flush(self, now):
        """Writes every bucket that ended more than 2 s ago, including empty ones (no request sent is visible)."""
        done = int((now - 2.0) / BUCKET)
        with self.lock:
            start = self.written + 1 if self.written is not None else (min(self.buckets) if self.buckets else done)
            lines = []
            for i in range(start, done):
                total, errors = self.buckets.pop(i, [0, 0])
                lines.append(f"{i} {total} {errors}\n")
            if lines:
                self.written = done - 1
        if lines:
            with open(self.path, "a") as f:
                f.write("".join(lines))


def request(host, port):
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", "/api/x")
        r = conn.getresponse()
        r.read()
        return 200 <= r.status < 300
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def worker(group, rate, index, count, parent):
    period = 1.0 / rate
    nxt = time.monotonic() + index / count * period
    k = index
    while os.getppid() == parent:
        now = time.monotonic()
        if nxt > now:
            time.sleep(nxt - now)
        sent = time.monotonic()
        host, port = group.targets[k % len(group.targets)]
        k += 1
        group.record(sent, request(host, port))
        nxt += period
        if nxt < time.monotonic() - 1.0:  # far behind (machine stalled): do not burst to catch up
            nxt = time.monotonic()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=100, help="requests per second per group")
    ap.add_argument("--threads", type=int, default=4, help="paced threads per group")
    ap.add_argument("--out", required=True)
    ap.add_argument("groups", nargs="+")
    args = ap.parse_args()
    parent = os.getppid()
    groups = []
    for spec in args.groups:
        name, _, targets = spec.partition("=")
        hosts = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in targets.split(",")]
        groups.append(Group(name, hosts, args.out))
    for g in groups:
        for t in range(args.threads):
            threading.Thread(target=worker, args=(g, args.rate / args.threads, t, args.threads, parent),
                             daemon=True).start()
    print("READY", flush=True)
    while os.getppid() == parent:
        time.sleep(BUCKET)
        now = time.monotonic()
        for g in groups:
            g.flush(now)


if __name__ == "__main__":
    main()
