"""A small cache whose entries expire: for facts that change rarely (limits, membership)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    def __init__(self, seconds: float, max_entries: int = 8192) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        # Expired entries are swept once per lifetime: keys of containers that are gone
        # (pids, cgroup paths) must not pile up until the cache is full.
        self._next_sweep = time.monotonic() + seconds

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = compute()
        self.put(key, value, now)
        return value

    def put(self, key: Hashable, value: V, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now >= self._next_sweep:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            self._next_sweep = now + self.seconds
        if len(self._entries) >= self.max_entries:
            self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = (now + self.seconds, value)

    def drop(self, key: Hashable) -> None:
        self._entries.pop(key, None)
