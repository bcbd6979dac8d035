#!/usr/bin/env python3
"""N health endpoints on loopback, one listening port each (asyncio, one process), for the probe benchmark.

    many_targets.py N URLS_FILE [--metrics]

Writes one URL per line to URLS_FILE, prints "READY <first port>", serves "200 ok" with keep-alive until its
parent goes away. With --metrics, GET /metrics answers what rollbackd-demo-service exposes (a request counter by
code and an 11-bucket latency histogram, growing on every scrape) and URLS_FILE lists base URLs
(http://127.0.0.1:PORT), for the daemon overhead benchmark (Benchmarks/overhead/run.py).
"""
import asyncio
import os
import resource
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "+Inf"]


def exposition(n):
    """What the demo service exposes after 100·n requests (1 % errors, latencies around 5 ms)."""
    return exposition_counts(99 * n, n)


def exposition_counts(ok, err):
    """The same after `ok` answers of 200 and `err` of 500 (Benchmarks/soak/targets.py varies the share)."""
    lines = ["# HELP http_requests_total Requests served, by status code.", "# TYPE http_requests_total counter",
             f'http_requests_total{{code="200"}} {ok}', f'http_requests_total{{code="500"}} {err}',
             "# HELP http_request_duration_seconds Request latency.",
             "# TYPE http_request_duration_seconds histogram"]
    total = ok + err
    for i, b in enumerate(BOUNDS):
        cumulative = total if i >= 2 else (total * (i + 1)) // 3
        lines.append(f'http_request_duration_seconds_bucket{{le="{b}"}} {cumulative}')
    lines += [f"http_request_duration_seconds_sum {total * 0.006:.3f}", f"http_request_duration_seconds_count {total}"]
    body = ("\n".join(lines) + "\n").encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


SCRAPES = {}  # port -> scrapes so far (the counters grow per target, across connections)


async def handle(reader, writer):
    port = writer.get_extra_info("sockname")[1]
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                return
            if METRICS and head.startswith(b"GET /metrics "):
                SCRAPES[port] = SCRAPES.get(port, 0) + 1
                writer.write(exposition(SCRAPES[port]))
            else:
                writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def watch_parent(parent):
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    os._exit(0)


METRICS = "--metrics" in sys.argv


async def main():
    n, urls_file = int(sys.argv[1]), sys.argv[2]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    servers = [await asyncio.start_server(handle, "127.0.0.1", 0, backlog=64) for _ in range(n)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    with open(urls_file, "w") as f:
        f.write("".join(f"http://127.0.0.1:{p}\n" if METRICS else f"http://127.0.0.1:{p}/healthz\n" for p in ports))
    print("READY", ports[0], flush=True)
    await watch_parent(os.getppid())


if __name__ == "__main__":
    asyncio.run(main())
