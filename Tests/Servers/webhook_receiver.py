#!/usr/bin/env python3
"""A webhook receiver for rollbackd's tests. Every request is verified with the `standardwebhooks` package (an
implementation independent of rollbackd's) and appended as one JSON line to --log:
  {"path", "id", "timestamp", "verified", "error", "type", "body", "t", "authorization"}

Prints "READY <port>" once listening on 127.0.0.1 (--port 0: any free port) and exits when its parent goes away.

Paths (the webhook URL chooses the behaviour):
  /ok                 204 when the signature verifies, 401 when it does not
  /status/NNN         always status NNN
  /retry-after/S      the first request of each webhook-id: 429 with "Retry-After: S"; later ones as /ok
  /fail/N             the first N requests (all ids): 503; later ones as /ok
  /slow/MS            as /ok after MS milliseconds
  /hold/N             the first N requests (all ids) as /ok; later ones wait until the file <--log>.release exists
                      (at most 10 minutes), then as /ok: delivery stops at a point the test chooses
  /hang               records the request, then never answers
"""
import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

lock = threading.Lock()
seen_ids = set()
failures = [0]
answered = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified, error = False, None
        try:
            self.server.webhook.verify(body, headers)
            verified = True
        except (WebhookVerificationError, Exception) as e:  # any failure is a failed verification
            error = f"{type(e).__name__}: {e}"
        try:
            parsed = json.loads(body)
        except Exception:
            parsed = body.decode("utf-8", "replace")
        record = {"path": self.path, "id": headers.get("webhook-id"), "timestamp": headers.get("webhook-timestamp"),
                  "verified": verified, "error": error, "type": parsed.get("type") if isinstance(parsed, dict) else None,
                  "body": parsed, "t": time.time(), "authorization": headers.get("authorization")}
        msg_id = headers.get("webhook-id")
        with lock:
            first_time = msg_id not in seen_ids
            seen_ids.add(msg_id)
            with open(self.server.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()

        parts = self.path.strip("/").split("/")
        kind = parts[0]
        if kind == "hang":
            time.sleep(3600)
            return
        if kind == "status":
            self.answer(int(parts[1]))
            return
        if kind == "retry-after" and first_time:
            self.answer(429, {"Retry-After": parts[1]})
            return
        if kind == "fail":
            with lock:
                failures[0] += 1
                failing = failures[0] <= int(parts[1])
            if failing:
                self.answer(503)
                return
        if kind == "slow":
            time.sleep(int(parts[1]) / 1000)
        if kind == "hold":
            with lock:
                answered[0] += 1
                held = answered[0] > int(parts[1])
            deadline = time.time() + 600
            while held and not os.path.exists(self.server.log_path + ".release") and time.time() < deadline:
                time.sleep(0.05)
        self.answer(204 if verified else 401)


def watch_parent():
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def main():
    # A child of a Swift test process inherits a signal mask that blocks SIGTERM (the dispatch threads block
    # signals); unblock it so being stopped is immediate.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.webhook = Webhook(args.secret)
    server.log_path = args.log
    threading.Thread(target=watch_parent, daemon=True).start()
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
