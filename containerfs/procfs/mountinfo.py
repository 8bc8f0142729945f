"""/proc/PID/mountinfo."""

from __future__ import annotations

from typing import NamedTuple


class Mount(NamedTuple):
    mountpoint: str
    fstype: str
    source: str
    device: str  # "major:minor" of the filesystem: every bind of one FUSE mount shares it
    root: str  # the path inside the filesystem that is mounted ("/proc/meminfo" for a bound view)


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


def topmost(mounts: list[Mount], mountpoint: str) -> Mount | None:
    """The mount that is visible at mountpoint (the last one mounted there), if any."""
    found = None
    for mount in mounts:
        if mount.mountpoint == mountpoint:
            found = mount
    return found
