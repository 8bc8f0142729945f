"""A latency histogram cheap enough for every read: fixed buckets, no allocation.

Buckets are log-linear: each power of two is split into 8, so a quantile is known within
1/8 of its value.  record() is a bit_length, two shifts and a list increment; the FUSE
loop is the only writer, readers take a copy of the counts.
"""

from __future__ import annotations

import math
from typing import NamedTuple

_SUB_BITS = 3  # 8 buckets per power of two
_BUCKETS = 64 << _SUB_BITS


def bucket(ns: int) -> int:
    """Index of the bucket holding a duration of ns nanoseconds (ns >= 0)."""
    if ns < 16:
        return ns
    bits = ns.bit_length()
    # bits - 3 octaves of 8 buckets below this one, then the 4 leading bits (8..15).
    return (bits << _SUB_BITS) + (ns >> (bits - 4)) - 32


def upper_bound(index: int) -> int:
    """The smallest duration (ns) above the bucket: every value in it is below this."""
    if index < 16:
        return index + 1
    octave, sub = divmod(index, 8)
    return (9 + sub) << (octave - 1)


class Summary(NamedTuple):
    samples: int
    sum_seconds: float
    p50_seconds: float | None  # None before the first record
    p99_seconds: float | None


def quantile(counts: list[int], q: float) -> float | None:
    """The q-quantile in seconds (the upper bound of its bucket), None when empty."""
    total = sum(counts)
    if total == 0:
        return None
    # The smallest value with at least q of the records at or below it.
    rank = max(1, math.ceil(q * total))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return upper_bound(index) / 1e9
    raise AssertionError("unreachable: rank <= total")


class LatencyHistogram:
    __slots__ = ("counts", "total_ns")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.total_ns = 0

    def record(self, ns: int) -> None:
        self.counts[bucket(ns)] += 1
        self.total_ns += ns

    def summary(self) -> Summary:
        counts = list(self.counts)
        return Summary(sum(counts), self.total_ns / 1e9, quantile(counts, 0.5), quantile(counts, 0.99))
