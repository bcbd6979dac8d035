#!/usr/bin/env python3
"""Runs a server that cannot report its own readiness (e.g. prometheus) for a test:

    run_watched.py PORT READY_PATH -- ARGV...

starts ARGV, polls http://127.0.0.1:PORT/READY_PATH until it answers 200 (80 s at most), then prints
"READY PORT". The child is stopped (SIGTERM, then SIGKILL) when this wrapper gets SIGTERM or its parent (the
test process) goes away, so no server outlives its test. If the child exits early, its exit status is printed
with the end of its output and the wrapper exits non-zero.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request


def main():
    sep = sys.argv.index("--")
    port, ready_path = int(sys.argv[1]), sys.argv[2]
    argv = sys.argv[sep + 1:]
    log = tempfile.TemporaryFile()
    child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    parent = os.getppid()

    def stop(*_):
        try:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        except ProcessLookupError:
            pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    url = f"http://127.0.0.1:{port}{ready_path}"
    deadline = time.time() + 80
    ready = False
    while time.time() < deadline:
        if child.poll() is not None:
            break
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    ready = True
                    break
        except Exception:
            pass
        time.sleep(0.1)
    if not ready:
        log.seek(0)
        tail = log.read()[-2000:].decode("utf-8", "replace")
        status = child.poll()
        print(f"NOT READY {argv[0]} exit={status} output: {tail}", file=sys.stderr, flush=True)
        if status is None:
            os.killpg(child.pid, signal.SIGKILL)
        sys.exit(1)
    print("READY", port, flush=True)
    while os.getppid() == parent and child.poll() is None:
        time.sleep(0.5)
    stop()


if __name__ == "__main__":
    main()
