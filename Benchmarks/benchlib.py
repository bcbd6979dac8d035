"""Helpers the benchmark drivers share (Benchmarks/recovery/run.py, Benchmarks/decisions/run.py,
Benchmarks/overhead/run.py, Benchmarks/soak/run.py): child processes that die with the driver and stop cleanly, free
loopback ports, bounded waits, a control-socket client, an sd_notify socket and /proc/PID/status readings. Not run by
`make test`."""
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def die_with_parent():
    """preexec_fn for a child: PR_SET_PDEATHSIG, so no orphan survives the driver (the signal follows the thread
    that forked the child)."""
    _libc.prctl(1, signal.SIGKILL)


def stop(p, sig=signal.SIGTERM):
    if p is None or p.poll() is not None:
        return
    p.send_signal(sig)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, seconds, cond, interval=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except OSError:
            pass
        time.sleep(interval)
    raise RuntimeError(f"timed out after {seconds}s waiting for {what}")


class SymlinkReleases:
    """For a fixture with `self.dir` (releases under `<dir>/releases/<version>`) and `self.link` (the `current`
    symlink): a deploy renames a new link over `current`, as a deploy tool does."""

    def release(self, v):
        return os.path.join(self.dir, "releases", v)

    def deploy(self, v):
        tmp = self.link + ".deploy"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(self.release(v), tmp)
        os.rename(tmp, self.link)

    def live(self):
        return os.path.basename(os.readlink(self.link))

    def deploy_bad_and_wait(self, interval, timeout, poll=0.01):
        """A drill's deploy: at a random phase of a tool ticking every `interval` (a fresh daemon ticks at start +
        k * interval, and a deploy locked to that would always land at the same point of its tick), `v2` goes
        live; then `current` is watched until the tool swaps it back to `v1`. Returns (t0, swapped), monotonic
        seconds; swapped is None when the tool did not within `timeout` (then the driver puts `v1` back itself)."""
        time.sleep(random.uniform(0, interval))
        if self.live() != "v1":
            raise RuntimeError(f"{self.name}: {self.live()} is live before the drill")
        t0 = time.monotonic()
        self.deploy("v2")
        while time.monotonic() - t0 < timeout:
            if self.live() == "v1":
                return t0, time.monotonic()
            time.sleep(poll)
        self.deploy("v1")
        return t0, None


def control(socket_path, command, **fields):
    """One request to a daemon's control socket (what `rollbackd status`, `mark-known-good`, … send)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(5)
        c.connect(socket_path)
        c.sendall((json.dumps({"command": command, **fields}) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def read_requests(path):
    """A load generator's log (Benchmarks/decisions/loadgen.py): (sent, answered, ok) per request, monotonic s."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                out.append((float(parts[0]), float(parts[1]), parts[2] == "1"))
    return out


class NotifySocket:
    """Receives sd_notify datagrams; keeps (monotonic time, message) pairs."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.lock = threading.Lock()
        self.messages = []
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode(errors="replace")))

    def clear(self):
        with self.lock:
            self.messages = []

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def wait_for(self, field, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in self.snapshot():
                if field in m.split("\n"):
                    return t
            time.sleep(0.002)
        return None


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0
