#!/usr/bin/env python3
"""The do-it-yourself rollback of the recovery benchmark: an Alertmanager webhook receiver that, for a
notification with a firing alert, swaps the release symlink back the same way rollbackd's symlink strategy does
(a new symlink under a temporary name, then rename(2) over the live one: atomic).

    webhook_swap.py --port N --link /path/current --target /path/releases/v1
    webhook_swap.py --port N --log-only

Logs each swap with its CLOCK_MONOTONIC time on stdout. With --log-only (the false-alert watch of run.py
--setting quiet) it swaps nothing and logs every notification as "NOTIFY <monotonic> <status> <job>,<job>..." (the
`job` labels of its alerts), so each alert that would have rolled a release back is counted. Stops when its parent
goes away.
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
    ap.add_argument("--link")
    ap.add_argument("--target")
    ap.add_argument("--log-only", action="store_true", help="log notifications, swap nothing")
    args = ap.parse_args()
    if not args.log_only and not (args.link and args.target):
        ap.error("--link and --target are required unless --log-only")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                note = json.loads(body)
            except ValueError:
                note = {}
            firing = note.get("status") == "firing"
            if args.log_only:
                jobs = sorted({a.get("labels", {}).get("job", "?") for a in note.get("alerts", [])
                               if a.get("status") == "firing"})
                print(f"NOTIFY {time.monotonic():.3f} {note.get('status')} {','.join(jobs) or '-'}", flush=True)
            elif firing:
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
