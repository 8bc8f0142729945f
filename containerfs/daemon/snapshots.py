"""What each reader was served at offset 0, for its reads at later offsets.

Kept per reading thread and file, and dropped at the read at the end.  Readers that stop
early (`head -1`) leave theirs behind: the oldest go first once there are too many, or
too many bytes, so no reader can make the daemon grow without bound.
"""

from __future__ import annotations

MAX_SNAPSHOTS = 4096
MAX_SNAPSHOT_BYTES = 16 * 1024 * 1024

Key = tuple[int, str]  # (thread id, path)


class Snapshots:
    def __init__(self, max_count: int = MAX_SNAPSHOTS, max_bytes: int = MAX_SNAPSHOT_BYTES) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._kept: dict[Key, bytes] = {}  # insertion order: oldest first
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Key) -> bytes | None:
        return self._kept.get(key)

    def put(self, key: Key, content: bytes) -> None:
        self.drop(key)  # re-inserted last: the newest
        self._kept[key] = content
        self.bytes += len(content)
        while len(self._kept) > self.max_count or (self.bytes > self.max_bytes and len(self._kept) > 1):
            self.drop(next(iter(self._kept)))

    def drop(self, key: Key) -> None:
        content = self._kept.pop(key, None)
        if content is not None:
            self.bytes -= len(content)
