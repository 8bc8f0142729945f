"""/proc/PID/mountinfo."""

from __future__ import annotations

from typing import NamedTuple


class Mount(NamedTuple):
    mountpoint: str  # relative to the reading process's root
    fstype: str
    source: str
    dev: str = ""  # "major:minor" of the superblock: tells two mounts of one filesystem type apart
    root: str = ""  # the path inside the filesystem that is mounted (a bind mount's file)


def _unescape(field: str) -> str:
    # Spaces, tabs, newlines and backslashes in paths are written as octal escapes.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        mounts.append(
            Mount(_unescape(fields[4]), fields[sep + 1], _unescape(fields[sep + 2]), fields[2], _unescape(fields[3]))
        )
    return mounts
