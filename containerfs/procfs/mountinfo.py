"""/proc/PID/mountinfo."""

from __future__ import annotations

import re
from typing import NamedTuple

from containerfs.host.errors import parser


class Mount(NamedTuple):
    mountpoint: str  # relative to the reading process's root
    fstype: str
    source: str
    dev: str = ""  # "major:minor" of the superblock: tells two mounts of one filesystem type apart
    root: str = ""  # the path inside the filesystem that is mounted (a bind mount's file)


_OCTAL = re.compile(rb"\\([0-7]{3})")


def _unescape(field: str) -> str:
    # The kernel writes a path's bytes as they are, except space, tab, newline and
    # backslash, which become \ooo octal escapes: undo only those, on the bytes, so a
    # UTF-8 name stays UTF-8 (text read with surrogateescape keeps undecodable bytes).
    if "\\" not in field:
        return field
    raw = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), field.encode("utf-8", "surrogateescape"))
    return raw.decode("utf-8", "surrogateescape")


@parser
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
