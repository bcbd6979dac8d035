#!/usr/bin/env python3
"""A programmable HTTP server for rollbackd's client and source tests: well-behaved answers and every fault a
metrics target can show (refusing is done by the test itself with a closed port).

Raw asyncio, so it can break HTTP on purpose. Prints "READY <port>" once listening on 127.0.0.1 (port 0 = any
free port) and exits when its parent process goes away.

Options: [PORT] [--tls CERT KEY]

Paths:
  /status/NNN            status NNN, body "status NNN"
  /echo                  JSON of the request: method, path, headers (lower-case names), body
  /hang                  reads the request, never answers (counted: /count/hang)
  /hang-body             sends headers promising 100 bytes, then nothing
  /drip?bytes=N&ms=M     Content-Length N, one byte every M ms
  /big?bytes=N           N bytes with Content-Length
  /big-chunked?bytes=N   N bytes, no Content-Length (connection close delimits)
  /garbage               bytes that are not HTTP, then close
  /close                 closes the connection without a byte
  /redirect?to=PATH      302 to PATH
  /retry-after[?in=N]    429 with Retry-After: 7 (or an HTTP date N seconds from now)
  /slow?ms=M             200 after M ms
  PUT /doc/NAME?status=S&ctype=T   stores the body; GET /doc/NAME serves it with status S (default 200)
  /count/NAME            how many GETs /doc/NAME has served
"""
import asyncio
import email.utils
import json
import os
import sys
import time
import urllib.parse

docs = {}
counts = {}


def response(status, body=b"", headers=None, reason="X"):
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    for k, v in (headers or {}).items():
        head.append(f"{k}: {v}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def handle(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            try:
                method, target, _ = line.decode("latin-1").split(" ", 2)
            except ValueError:
                return
            headers = {}
            while True:
                h = await reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            body = b""
            if "content-length" in headers:
                body = await reader.readexactly(int(headers["content-length"]))
            url = urllib.parse.urlsplit(target)
            q = dict(urllib.parse.parse_qsl(url.query))
            path = url.path
            if path.startswith("/status/"):
                code = int(path.split("/")[2])
                writer.write(response(code, f"status {code}".encode()))
            elif path == "/echo":
                payload = {"method": method, "path": target, "headers": headers,
                           "body": body.decode("utf-8", "replace")}
                writer.write(response(200, json.dumps(payload).encode(), {"Content-Type": "application/json"}))
            elif path == "/hang" or path.startswith("/hang/"):
                counts["hang"] = counts.get("hang", 0) + 1
                await asyncio.sleep(3600)
            elif path == "/hang-body":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(3600)
            elif path == "/drip":
                n, ms = int(q.get("bytes", "100000")), int(q.get("ms", "100"))
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
                for _ in range(n):
                    writer.write(b"#")
                    await writer.drain()
                    await asyncio.sleep(ms / 1000)
            elif path in ("/big", "/big-chunked"):
                n = int(q.get("bytes", str(50 << 20)))
                if path == "/big":
                    writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n".encode())
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                chunk = (b"# padding line of an exposition that is far too large\n" * 1200)
                sent = 0
                while sent < n:
                    part = chunk[: n - sent]
                    writer.write(part)
                    sent += len(part)
                    await writer.drain()
                if path == "/big-chunked":
                    return
            elif path == "/garbage":
                writer.write(b"\x00\x01\x02 this is not HTTP \xff\xfe\r\n\r\n")
                await writer.drain()
                return
            elif path == "/close":
                return
            elif path == "/redirect":
                writer.write(response(302, b"", {"Location": q.get("to", "/status/200")}))
            elif path == "/retry-after":
                # ?in=N: an HTTP date N seconds from now instead of delta-seconds.
                after = "7" if "in" not in q else email.utils.formatdate(time.time() + int(q["in"]), usegmt=True)
                writer.write(response(429, b"slow down", {"Retry-After": after}))
            elif path == "/slow":
                await asyncio.sleep(int(q.get("ms", "500")) / 1000)
                writer.write(response(200, b"slow ok"))
            elif path.startswith("/doc/") and method == "PUT":
                name = path[len("/doc/"):]
                docs[name] = (int(q.get("status", "200")), q.get("ctype", "text/plain; version=0.0.4"), body)
                writer.write(response(204))
            elif path.startswith("/doc/"):
                name = path[len("/doc/"):]
                counts[name] = counts.get(name, 0) + 1
                if name not in docs:
                    writer.write(response(404, b"no such doc"))
                else:
                    status, ctype, content = docs[name]
                    writer.write(response(status, content, {"Content-Type": ctype}))
            elif path.startswith("/count/"):
                writer.write(response(200, str(counts.get(path[len("/count/"):], 0)).encode()))
            else:
                writer.write(response(404, b"not found"))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def watch_parent(parent):
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    os._exit(0)


async def main():
    args = sys.argv[1:]
    ssl_ctx = None
    if "--tls" in args:
        # --tls CERT KEY: serve HTTPS with that certificate.
        i = args.index("--tls")
        import ssl
        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_ctx.load_cert_chain(args[i + 1], args[i + 2])
        del args[i:i + 3]
    port = int(args[0]) if args else 0
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024, ssl=ssl_ctx)
    print("READY", server.sockets[0].getsockname()[1], flush=True)
    asyncio.ensure_future(watch_parent(os.getppid()))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
