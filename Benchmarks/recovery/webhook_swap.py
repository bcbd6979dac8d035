#!/usr/bin/env python3
"""The do-it-yourself rollback of the recovery benchmark: an Alertmanager webhook receiver that, for a
notification with a firing alert, swaps the release symlink back the same way rollbackd's symlink strategy does
(a new symlink under a temporary name, then rename(2) over the live one: atomic).

    webhook_swap.py --port N --link /path/current --target /path/releases/v1

Logs each swap with its CLOCK_MONOTONIC time on stdout. Stops when its parent goes away.
"""
import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--link", required=True)
    ap.add_argument("--target", required=True)
    args = ap.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                firing = json.loads(body).get("status") == "firing"
            except ValueError:
                firing = False
            if firing:
                tmp = f"{args.link}.swap-{os.getpid()}"
                if os.path.lexists(tmp):
                    os.unlink(tmp)
                os.symlink(args.target, tmp)  # ln -sfn TARGET current.tmp
                os.rename(tmp, args.link)     # mv -T current.tmp current
                print(f"SWAP {time.monotonic():.3f} -> {args.target}", flush=True)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
