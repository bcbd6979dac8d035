#!/usr/bin/env python3
"""A TCP forwarder that stands for the network between one rollbackd host and etcd, so a test can cut it.

Usage: tcp_proxy.py TARGET_PORT [TARGET_PORT...]
Listens on a free 127.0.0.1 port and prints "READY <port>"; each connection goes to the first target that accepts
it. The test partitions the host with SIGSTOP (packets go nowhere, requests time out, as behind a dead link) and
heals it with SIGCONT. Exits when its parent process goes away.
"""
import asyncio
import os
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    targets = [int(p) for p in sys.argv[1:]]
    parent = os.getppid()

    async def handle(reader, writer):
        for port in targets:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            return
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print("READY %d" % server.sockets[0].getsockname()[1], flush=True)
    while os.getppid() == parent:
        await asyncio.sleep(0.5)


asyncio.run(main())
