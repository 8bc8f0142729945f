"""/proc/diskstats and /sys/block/DEV/stat: the same counters, 11 (2.6), 15 (4.18+) or 17 (5.5+).

diskstats prefixes each device's counters with `major minor name`; the sysfs stat file of
a disk or partition holds only its counters.
"""

from __future__ import annotations

from typing import NamedTuple

from containerfs.host.errors import parser

# Positions (0-based, after the name) of the counters a cgroup can supply.
READS, SECTORS_READ, WRITES, SECTORS_WRITTEN = 0, 2, 4, 6
DISCARDS, SECTORS_DISCARDED = 11, 13


class DiskLine(NamedTuple):
    major: int
    minor: int
    name: str
    counters: tuple[int, ...]


@parser
def parse_diskstats(text: str) -> list[DiskLine]:
    disks = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        disks.append(DiskLine(int(fields[0]), int(fields[1]), fields[2], tuple(map(int, fields[3:]))))
    return disks


def render_diskstats(disks: list[DiskLine]) -> str:
    # The kernel's format is "%4d %7d %s " followed by space-separated counters.
    return "".join(f"{d.major:4d} {d.minor:7d} {d.name} " + " ".join(str(v) for v in d.counters) + "\n" for d in disks)


@parser
def parse_block_stat(text: str) -> tuple[int, ...]:
    return tuple(map(int, text.split()))


def render_block_stat(counters: tuple[int, ...]) -> str:
    # part_stat_show(): every counter right-aligned in 8 columns, one space apart.
    return " ".join(f"{v:8d}" for v in counters) + "\n"
