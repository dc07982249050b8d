#!/usr/bin/env python3
"""Container health checks for the topictag images (standard library only).

The tagger, labeler and trainer have no HTTP server, so their checks look at the
process's own connections instead:

  topictag-healthcheck http URL        URL answers 2xx (the gateway's /healthz, /readyz)
  topictag-healthcheck connected VAR   this container holds an ESTABLISHED TCP connection to a
                                       port named in $VAR (a host:port list or a URL). The
                                       tagger opens its Kafka connections only after the model
                                       has loaded, so this also says "model loaded".
  topictag-healthcheck reachable VAR   a TCP connection to the first host:port in $VAR opens
                                       (Celery beat keeps no connection open between ticks)
  topictag-healthcheck progress FILE MAX_AGE_S
                                       FILE (TOPICTAG_HEARTBEAT_FILE, touched by a worker's run
                                       loop after every poll and batch) is at most MAX_AGE_S
                                       seconds old: the worker is making progress, not only
                                       connected (a hung engine keeps its connections)
"""

from __future__ import annotations

import os
import socket
import sys
import time
import urllib.request
from urllib.parse import urlsplit

DEFAULT_PORTS = {"redis": 6379, "rediss": 6380, "postgresql": 5432, "http": 80, "https": 443}


def endpoints(var: str) -> list[tuple[str, int]]:
    value = os.environ.get(var, "")
    if "://" in value:
        url = urlsplit(value)
        return [(url.hostname or "", url.port or DEFAULT_PORTS.get(url.scheme.split("+")[0], 0))]
    pairs = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        host, _, port = item.rpartition(":")
        pairs.append((host.strip("[]"), int(port)))
    return pairs


def established_remote_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.readlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "01":  # TCP_ESTABLISHED
                ports.add(int(fields[2].rsplit(":", 1)[1], 16))
    return ports


def progress(path: str, max_age_s: str) -> int:
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError as exc:  # not written yet, or the volume is gone
        print(f"progress {path}: {exc}", file=sys.stderr)
        return 1
    if age > float(max_age_s):
        print(f"progress {path}: last beat {age:.0f} s ago (> {max_age_s} s)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "progress":
        return progress(argv[1], argv[2])
    if len(argv) != 2 or argv[0] not in ("http", "connected", "reachable"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, target = argv
    try:
        if mode == "http":
            with urllib.request.urlopen(target, timeout=5) as response:
                return 0 if 200 <= response.status < 300 else 1
        wanted = endpoints(target)
        if not wanted:
            print(f"{target} names no host:port", file=sys.stderr)
            return 1
        if mode == "connected":
            return 0 if {port for _, port in wanted} & established_remote_ports() else 1
        with socket.create_connection(wanted[0], timeout=5):
            return 0
    except OSError as exc:
        print(f"{mode} {target}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
