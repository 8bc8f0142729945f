"""What each open file was served at offset 0, for its reads at later offsets (seq_file).

One entry per open file (a handle from OPEN), whichever thread reads through it, dropped
at RELEASE: nothing of one open file is ever visible through another.  A reader holding
thousands of descriptors could still pin a snapshot in each; past a count or byte budget
the oldest snapshots lose their content (their handles stay valid and render afresh at
their next read), and past a handle budget the oldest handles are forgotten altogether
(a read through one renders for its reader).  Either way a handle only ever gets content
rendered for a read through that same handle.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict

MAX_SNAPSHOTS = 4096
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024
# A forgotten handle costs nothing; a kept one about 200 bytes without content.
MAX_HANDLES = 65536
# A handle names its file too (handle % KINDS), so a forgotten handle still reads its view.
KINDS = 1 << 20  # distinct file paths (views and passed-through host files)


class Snapshots:
    def __init__(
        self, max_count: int = MAX_SNAPSHOTS, max_bytes: int = MAX_SNAPSHOT_BYTES, max_handles: int = MAX_HANDLES
    ) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.max_handles = max_handles
        self._handles: OrderedDict[int, None] = OrderedDict()  # live handles, oldest first
        self._kept: OrderedDict[int, bytes] = OrderedDict()  # handle -> content, oldest first
        self._next = itertools.count(1)
        self._lock = threading.Lock()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    def handles(self) -> int:
        return len(self._handles)

    def open(self, kind: int) -> int:
        """A new handle, never used before, for a file of kind (0 <= kind < KINDS)."""
        if not 0 <= kind < KINDS:
            raise ValueError(f"file kind {kind} out of range")
        with self._lock:
            handle = next(self._next) * KINDS + kind
            self._handles[handle] = None
            while len(self._handles) > self.max_handles:
                self._forget(next(iter(self._handles)))
            return handle

    @staticmethod
    def kind(handle: int) -> int:
        return handle % KINDS

    def get(self, handle: int) -> bytes | None:
        return self._kept.get(handle)

    def put(self, handle: int, content: bytes) -> None:
        with self._lock:
            if handle not in self._handles:
                return  # released (or forgotten) meanwhile: nothing may outlive it
            self._drop(handle)
            self._kept[handle] = content  # re-inserted last: the newest
            self.bytes += len(content)
            while len(self._kept) > self.max_count or (self.bytes > self.max_bytes and len(self._kept) > 1):
                self._drop(next(iter(self._kept)))

    def release(self, handle: int) -> None:
        with self._lock:
            self._forget(handle)

    def _forget(self, handle: int) -> None:
        self._handles.pop(handle, None)
        self._drop(handle)

    def _drop(self, handle: int) -> None:
        content = self._kept.pop(handle, None)
        if content is not None:
            self.bytes -= len(content)
