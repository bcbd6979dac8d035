#!/usr/bin/env python3
"""Helpers for the executor tests (loopback only). Each runs in the foreground, prints "READY <port>" on a line of
its own once it is ready (the test kit's ServerProcess waits for it) and exits when its parent (the test process)
goes away or on SIGTERM.

  fixture.py serve --body TEXT
      An HTTP server on 127.0.0.1 (a free port) answering every GET with TEXT; GET /__count answers how many
      other requests it served.

  fixture.py record --log FILE
      An HTTP server that appends every request (any method) to FILE as a JSON line
      {"method", "path", "headers", "body"} and answers: /status/NNN -> NNN with body "status NNN";
      /slow -> 200 after 30 s; anything else -> 200 {"ok": true}.

  fixture.py client --url URL --stop-file F --out O
      A client that GETs URL in a tight loop, a new connection per request, until F exists, then writes
      {"ok": n, "failed": n, "errors": [...], "bodies": {body: count}, "transitions": [[t, body], ...]}
      to O (t: seconds since the epoch) and exits. Prints "READY 0" once the first request was answered (or failed).
"""
import argparse
import http.client
import http.server
import json
import os
import signal
import socketserver
import sys
import threading
import time


def run_ready(ready_port_fn, run_fn):
    """Prepares (ready_port_fn returns the port, 0 for none), says READY, then runs until done or orphaned."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
    port = ready_port_fn()
    parent = os.getppid()

    def watch_parent():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    print(f"READY {port}", flush=True)
    run_fn()


def serve(args):
    body = args.body.encode()
    count = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/__count":
                with lock:
                    out = str(count[0]).encode()
            else:
                with lock:
                    count[0] += 1
                out = body
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 256

    holder = {}

    def prepare():
        srv = Server(("127.0.0.1", args.port), Handler)
        holder["srv"] = srv
        return srv.server_address[1]

    run_ready(prepare, lambda: holder["srv"].serve_forever())


def record(args):
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n).decode(errors="replace") if n else ""
            entry = {"method": self.command, "path": self.path,
                     "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            with lock, open(args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")
            status, out = 200, b'{"ok": true}'
            if self.path.startswith("/status/"):
                status = int(self.path.split("/")[2])
                out = f"status {status}".encode()
            elif self.path == "/slow":
                time.sleep(30)
            self.send_response(status)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

        def log_message(self, *a):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    holder = {}

    def prepare():
        srv = Server(("127.0.0.1", 0), Handler)
        holder["srv"] = srv
        return srv.server_address[1]

    run_ready(prepare, lambda: holder["srv"].serve_forever())


def client(args):
    host_port = args.url.split("//", 1)[1].split("/", 1)
    host, port = host_port[0].rsplit(":", 1)
    path = "/" + (host_port[1] if len(host_port) > 1 else "")
    result = {"ok": 0, "failed": 0, "errors": [], "bodies": {}, "transitions": []}

    def once():
        try:
            c = http.client.HTTPConnection(host, int(port), timeout=5)
            c.request("GET", path, headers={"Connection": "close"})
            resp = c.getresponse()
            data = resp.read().decode(errors="replace")
            c.close()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {data[:100]}")
            result["ok"] += 1
            result["bodies"][data] = result["bodies"].get(data, 0) + 1
            if not result["transitions"] or result["transitions"][-1][1] != data:
                result["transitions"].append([time.time(), data])
        except Exception as e:
            result["failed"] += 1
            if len(result["errors"]) < 20:
                result["errors"].append(f"{time.time():.3f} {type(e).__name__}: {e}")

    def prepare():
        once()
        return 0

    def run():
        while not os.path.exists(args.stop_file):
            once()
            if args.pause:
                time.sleep(args.pause)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f)
        os.rename(tmp, args.out)

    run_ready(prepare, run)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--body", required=True)
    s.add_argument("--port", type=int, default=0)
    r = sub.add_parser("record")
    r.add_argument("--log", required=True)
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--stop-file", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--pause", type=float, default=0.0)
    args = p.parse_args()
    {"serve": serve, "record": record, "client": client}[args.cmd](args)


if __name__ == "__main__":
    main()
