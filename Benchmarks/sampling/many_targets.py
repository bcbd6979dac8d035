#!/usr/bin/env python3
"""N health endpoints on loopback, one listening port each (asyncio, one process), for the probe benchmark.

    many_targets.py N URLS_FILE

Writes one URL per line to URLS_FILE, prints "READY <first port>", serves "200 ok" with keep-alive until its
parent goes away.
"""
import asyncio
import os
import resource
import sys

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                return
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


async def main():
    n, urls_file = int(sys.argv[1]), sys.argv[2]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    servers = [await asyncio.start_server(handle, "127.0.0.1", 0, backlog=64) for _ in range(n)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    with open(urls_file, "w") as f:
        f.write("".join(f"http://127.0.0.1:{p}/healthz\n" for p in ports))
    print("READY", ports[0], flush=True)
    await watch_parent(os.getppid())


if __name__ == "__main__":
    asyncio.run(main())
