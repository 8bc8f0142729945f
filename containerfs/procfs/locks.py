"""/proc/locks: which files are locked, by device and inode."""

from __future__ import annotations

from typing import NamedTuple

from containerfs.host.errors import parser


class FileLock(NamedTuple):
    kind: str  # FLOCK, POSIX, OFDLCK, LEASE...
    major: int
    minor: int
    inode: int


@parser
def parse_locks(text: str) -> list[FileLock]:
    """The held locks (a waiter's "->" line names a lock it does not have yet)."""
    locks = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":
            continue
        device = fields[5].split(":")
        if len(device) != 3:
            continue  # not the maj:min:inode field of any kernel we know
        try:
            major, minor, inode = int(device[0], 16), int(device[1], 16), int(device[2])
        except ValueError:
            continue
        locks.append(FileLock(fields[1], major, minor, inode))
    return locks
