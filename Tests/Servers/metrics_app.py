#!/usr/bin/env python3
"""An application instance for rollbackd's sampling tests, instrumented with the real `prometheus_client` package.

The test tells it what to have served, and it records exactly that through prometheus_client's Counter, Histogram
and Gauge, so /metrics is the real library's exposition:

  POST /simulate?ok=N&errors=M&latency=S   records N requests with code 200 and M with code 500, each observed at
                                           S seconds in http_request_duration_seconds (handler="/api")
  POST /background?ok=N&errors=M&every=S   from now on records N ok and M error requests every S seconds, in this
                                           process (traffic that no busy test runner can starve)
  POST /restart                            a new registry: every counter starts again from zero (a process restart)
  POST /health?status=S&body=TEXT          what GET /healthz answers from now on (default 200, {"status":"ok"})
  POST /version?v=TEXT                     what GET /version answers
  POST /inflight?n=N                       sets the inflight_requests gauge
  GET  /metrics  /healthz  /version

Prints "READY <port>" once listening on 127.0.0.1 (argv[1], 0 = any free port); exits when its parent goes away.
"""
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
lock = threading.Lock()
state = {"health_status": 200, "health_body": '{"status": "ok"}', "version": "v1"}


def new_registry():
    reg = CollectorRegistry()
    return {
        "registry": reg,
        "requests": Counter("http_requests_total", "Requests served.", ["code", "method"], registry=reg),
        "latency": Histogram("http_request_duration_seconds", "Request latency.", ["handler"], buckets=BUCKETS,
                             registry=reg),
        "inflight": Gauge("inflight_requests", "Requests in flight.", registry=reg),
    }


metrics = new_registry()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/plain; charset=utf-8"):
        data = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/metrics":
            with lock:
                body = generate_latest(metrics["registry"])
            self.reply(200, body, CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self.reply(state["health_status"], state["health_body"], "application/json")
        elif path == "/version":
            self.reply(200, state["version"] + "\n")
        else:
            self.reply(404, "not found")

    def do_POST(self):
        global metrics
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length", "0"))
        if length:
            self.rfile.read(length)
        with lock:
            if url.path == "/simulate":
                ok, errors, latency = int(q.get("ok", "0")), int(q.get("errors", "0")), float(q.get("latency", "0.01"))
                if ok:
                    metrics["requests"].labels("200", "get").inc(ok)
                if errors:
                    metrics["requests"].labels("500", "get").inc(errors)
                for _ in range(ok + errors):
                    metrics["latency"].labels("/api").observe(latency)
            elif url.path == "/background":
                ok, errors, every = int(q.get("ok", "0")), int(q.get("errors", "0")), float(q.get("every", "0.1"))
                threading.Thread(target=background, args=(ok, errors, every), daemon=True).start()
            elif url.path == "/restart":
                metrics = new_registry()
            elif url.path == "/health":
                state["health_status"] = int(q.get("status", "200"))
                state["health_body"] = q.get("body", '{"status": "ok"}')
            elif url.path == "/version":
                state["version"] = q.get("v", "v1")
            elif url.path == "/inflight":
                metrics["inflight"].set(float(q.get("n", "0")))
            else:
                self.reply(404, "not found")
                return
        self.reply(200, "ok")


def background(ok, errors, every):
    while True:
        with lock:
            if ok:
                metrics["requests"].labels("200", "get").inc(ok)
            if errors:
                metrics["requests"].labels("500", "get").inc(errors)
        time.sleep(every)


def watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    print("READY", server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
