#!/usr/bin/env python3
"""Make sure a real systemd-journald listens on /run/systemd/journal/socket for the tests.

If a journald already answers on the socket, print "existing" and exit 0 (it is not ours to stop).
Otherwise start /lib/systemd/systemd-journald directly (this machine has no systemd as PID 1 to socket-activate
it), wait until its socket accepts datagrams, print "started <pid>" and exit 0, leaving a small watcher process
behind that stops journald, and removes the sockets and the drop-in it created, once the process --watch-pid
is gone (the test process). On failure print "failed: <reason>" and exit 1.

The drop-in (/run/systemd/journald.conf.d/50-rollbackd-tests.conf, only while our journald runs) turns off rate
limiting (the tests write thousands of entries in seconds) and keeps the journal volatile under /run/log/journal.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

SOCKET = "/run/systemd/journal/socket"
RUNTIME_DIR = "/run/systemd/journal"
DROPIN_DIR = "/run/systemd/journald.conf.d"
DROPIN = DROPIN_DIR + "/50-rollbackd-tests.conf"
CANDIDATES = ["/lib/systemd/systemd-journald", "/usr/lib/systemd/systemd-journald"]


def answers() -> bool:
    """True when something accepts datagrams on journald's native socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(SOCKET)
        return True
    except OSError:
        return False
    finally:
        s.close()


def alive(pid: int) -> bool:
    """True while the process runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def main() -> int:
    # Children of a Swift test process inherit a mask that blocks SIGTERM; journald must get ours.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
    ap = argparse.ArgumentParser()
    ap.add_argument("--watch-pid", type=int, required=True)
    ap.add_argument("--log", default="/tmp/rollbackd-test-journald.log")
    args = ap.parse_args()

    if answers():
        print("existing", flush=True)
        return 0
    binary = next((c for c in CANDIDATES if os.access(c, os.X_OK)), None)
    if binary is None:
        print("failed: no systemd-journald binary at " + " or ".join(CANDIDATES) + " (install Debian's systemd)",
              flush=True)
        return 1
    if os.geteuid() != 0:
        print("failed: starting systemd-journald needs root (it binds /run/systemd/journal)", flush=True)
        return 1

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_fd)
        with os.fdopen(read_fd) as r:
            line = r.readline().strip()
        if not line:
            line = "failed: the journald watcher died before reporting"
        print(line, flush=True)
        return 0 if line.startswith("started") else 1

    # Watcher: detach from the test's process group and pipes.
    os.close(read_fd)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    report = os.fdopen(write_fd, "w")

    created_dropin = False
    try:
        os.makedirs(DROPIN_DIR, exist_ok=True)
        with open(DROPIN, "w") as f:
            f.write("# written by rollbackd's test harness while it runs its own journald\n"
                    "[Journal]\nStorage=volatile\nRateLimitIntervalSec=0\nRateLimitBurst=0\n")
        created_dropin = True
    except OSError:
        pass

    log = open(args.log, "ab")
    proc = subprocess.Popen([binary], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None and not answers():
        time.sleep(0.05)
    if not answers():
        code = proc.poll()
        if code is None:
            proc.kill()
            proc.wait()
        report.write(f"failed: {binary} did not open {SOCKET} within 10s (exit {code}; see {args.log})\n")
        report.close()
        if created_dropin:
            os.unlink(DROPIN)
        return 1
    report.write(f"started {proc.pid}\n")
    report.close()

    def stop_on_signal(signum, frame):
        raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop_on_signal)
    try:
        while alive(args.watch_pid) and proc.poll() is None:
            time.sleep(0.2)
    finally:
        stop(proc, created_dropin)
    return 0


def stop(proc, created_dropin: bool) -> None:
    """Stop our journald and remove what it and we created."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # journald leaves its sockets behind; remove them so "no journal socket" is true again.
    for name in ("socket", "stdout", "dev-log", "io.systemd.journal"):
        try:
            os.unlink(os.path.join(RUNTIME_DIR, name))
        except OSError:
            pass
    if created_dropin:
        try:
            os.unlink(DROPIN)
        except OSError:
            pass


if __name__ == "__main__":
    sys.exit(main())
