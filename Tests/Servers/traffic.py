#!/usr/bin/env python3
"""Steady traffic for the end-to-end tests: GET each URL given, `--burst` requests every `--every` seconds, forever.

A process of its own, so the traffic a test needs keeps flowing however busy the test runner is. Exits when its
parent goes away. Answers (200 or 500) are not judged: the guarded service's own counters are what rollbackd reads.
"""
import argparse
import os
import threading
import time
import urllib.error
import urllib.request


def watch_parent(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("urls", nargs="+")
    p.add_argument("--burst", type=int, default=4)
    p.add_argument("--every", type=float, default=0.02)
    a = p.parse_args()
    threading.Thread(target=watch_parent, args=(os.getppid(),), daemon=True).start()
    while True:
        for url in a.urls:
            for _ in range(a.burst):
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                except (urllib.error.URLError, OSError):
                    pass
        time.sleep(a.every)


if __name__ == "__main__":
    main()
