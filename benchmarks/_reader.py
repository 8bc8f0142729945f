#!/usr/bin/env python3
"""The reader bench_reads.py runs inside its container: the standard library only, so it
starts fast and needs nothing but this file bound into the container.

    _reader.py loop PATH START DURATION [read|sendfile]   # prints one JSON line
    _reader.py cat PATH                                  # prints {"pid_in_ns", "content"}
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence


def _reader_loop(path: str, start: float, duration: float, mode: str = "read") -> int:
    """open / read until EOF / close ``path`` from ``start`` (CLOCK_MONOTONIC) on.

    mode "read" reads with read(2) in 64 KiB chunks, "sendfile" copies to /dev/null
    with sendfile(2) (busybox cat's way: splice through the page cache).  Each cycle's
    latency goes into a histogram of whole microseconds.
    """
    o_open, o_read, o_close, mono, clock = os.open, os.read, os.close, time.monotonic, time.perf_counter_ns
    sendfile = os.sendfile
    rdonly = os.O_RDONLY
    sink = os.open(os.devnull, os.O_WRONLY)
    use_sendfile = mode == "sendfile"
    delay = start - mono()
    if delay > 0:
        time.sleep(delay)
    end = start + duration
    count = errors = nbytes = 0
    first_error = ""
    latencies: dict[int, int] = {}
    t0 = mono()
    while mono() < end:
        began = clock()
        try:
            fd = o_open(path, rdonly)
            try:
                while True:
                    n = sendfile(sink, fd, None, 65536) if use_sendfile else len(o_read(fd, 65536))
                    if not n:
                        break
                    nbytes += n
            finally:
                o_close(fd)
            count += 1
            us = (clock() - began) // 1000
            latencies[us] = latencies.get(us, 0) + 1
        except OSError as exc:
            errors += 1
            if not first_error:
                first_error = repr(exc)
            if errors >= 1000:
                break
    elapsed = mono() - t0
    print(
        json.dumps(
            {
                "pid_in_ns": os.getpid(),
                "count": count,
                "elapsed": elapsed,
                "bytes": nbytes,
                "errors": errors,
                "first_error": first_error,
                "late": -delay if delay < 0 else 0.0,
                "latency_us": sorted(latencies.items()),
            }
        )
    )
    return 0


def _reader_cat(path: str) -> int:
    with open(path, "rb", buffering=0) as f:
        data = b""
        while True:
            chunk = f.read(65536)
            if not chunk:
                break
            data += chunk
    print(json.dumps({"pid_in_ns": os.getpid(), "content": data.decode("utf-8", "replace")}))
    return 0


def reader_main(argv: Sequence[str]) -> int:
    if len(argv) in (4, 5) and argv[0] == "loop":
        return _reader_loop(argv[1], float(argv[2]), float(argv[3]), *argv[4:])
    if len(argv) == 2 and argv[0] == "cat":
        return _reader_cat(argv[1])
    print("usage: _reader.py loop PATH START DURATION [read|sendfile] | cat PATH", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(reader_main(sys.argv[1:]))
