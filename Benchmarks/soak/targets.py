#!/usr/bin/env python3
"""N service instances on loopback whose faults the soak driver (Benchmarks/soak/run.py) switches. Not run by
`make test`.

    targets.py N URLS_FILE RELEASE_LINK

Like Benchmarks/sampling/many_targets.py --metrics (one port per instance, one asyncio process, /healthz answers
"ok", /metrics the demo service's request counter and latency histogram, growing by 100 requests per scrape), with
two differences:
- the share of 500s is the `errorRate` of RELEASE_LINK/release.json (re-read every 0.5 s; the `current` symlink of a
  release directory, as rollbackd-demo-service reads it), so a deploy of a bad release shows in /metrics and a
  rollback ends it;
- each instance has a mode, set by lines on stdin: `MODE PORT[,PORT…]` with MODE one of
    ok       normal answers
    refuse   the listening socket is closed and open connections dropped: connections are refused
    hang     connections are accepted and requests read, never answered
    garbage  /metrics answers 200 with random bytes as the exposition, /healthz random bytes that are not HTTP
  Each line is acknowledged on stdout (`OK MODE n`) once applied.
Writes base URLs (http://127.0.0.1:PORT) to URLS_FILE, prints "READY <first port>", exits when its parent goes away.
"""
import asyncio
import json
import os
import random
import resource
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sampling"))
from many_targets import RESPONSE, exposition_counts, watch_parent  # noqa: E402

MODES = ("ok", "refuse", "hang", "garbage")


class Instance:
    def __init__(self, port, server):
        self.port, self.server = port, server
        self.mode = "ok"
        self.ok = self.err = 0
        self.debt = 0.0  # fractional errors carried to the next scrape
        self.writers = set()
        self.changed = asyncio.Event()  # set (and replaced) on every mode change: wakes hanging requests


INSTANCES = {}
ERROR_RATE = [0.01]


def garbage(n):
    return bytes(random.getrandbits(8) for _ in range(n))


async def handle(reader, writer):
    inst = INSTANCES[writer.get_extra_info("sockname")[1]]
    inst.writers.add(writer)
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if inst.mode == "hang":
                await inst.changed.wait()
                return  # the mode changed: drop this connection, as a restarted process would
            if inst.mode == "garbage":
                if head.startswith(b"GET /metrics "):
                    body = garbage(random.randint(16, 2048))
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)
                else:
                    writer.write(garbage(random.randint(1, 512)))
                    await writer.drain()
                    return
            elif head.startswith(b"GET /metrics "):
                inst.debt += 100 * ERROR_RATE[0]
                err = int(inst.debt)
                inst.debt -= err
                inst.ok += 100 - err
                inst.err += err
                writer.write(exposition_counts(inst.ok, inst.err))
            else:
                writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        inst.writers.discard(writer)
        writer.close()


async def set_mode(inst, mode):
    if mode == inst.mode:
        return
    if inst.mode == "refuse":
        inst.server = await asyncio.start_server(handle, "127.0.0.1", inst.port, backlog=64)
    inst.mode = mode
    inst.changed.set()
    inst.changed = asyncio.Event()
    if mode == "refuse":
        inst.server.close()
        for w in list(inst.writers):
            w.transport.abort()


async def read_release(link):
    while True:
        try:
            with open(os.path.join(link, "release.json")) as f:
                ERROR_RATE[0] = float(json.load(f).get("errorRate", 0.0))
        except (OSError, ValueError):
            pass
        await asyncio.sleep(0.5)


async def commands():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        parts = line.decode().split()
        if len(parts) != 2 or parts[0] not in MODES:
            print(f"ERROR bad command {line!r}", flush=True)
            continue
        ports = [int(p) for p in parts[1].split(",")]
        for p in ports:
            await set_mode(INSTANCES[p], parts[0])
        print(f"OK {parts[0]} {len(ports)}", flush=True)


async def main():
    n, urls_file, link = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for _ in range(n):
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=64)
        port = server.sockets[0].getsockname()[1]
        INSTANCES[port] = Instance(port, server)
    with open(urls_file, "w") as f:
        f.write("".join(f"http://127.0.0.1:{p}\n" for p in INSTANCES))
    tasks = [asyncio.create_task(read_release(link)), asyncio.create_task(commands())]  # referenced: not collected
    print("READY", next(iter(INSTANCES)), flush=True)
    await watch_parent(os.getppid())
    del tasks


if __name__ == "__main__":
    asyncio.run(main())
