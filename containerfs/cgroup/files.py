"""Pure parsers for cgroup control files (both hierarchies)."""

from __future__ import annotations

from fractions import Fraction

from containerfs.host.errors import parser

# v1 reports "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on 4 KiB pages,
# other values with other page sizes); nothing real comes near 2^60 bytes.
_UNLIMITED_FLOOR = 1 << 60


@parser
def parse_limit(text: str) -> int | None:
    """A byte limit, or None for no limit (v2 `max`, v1's huge sentinel)."""
    value = text.strip()
    return None if value == "max" else limit_from_bytes(int(value))


def limit_from_bytes(number: int) -> int | None:
    return None if number >= _UNLIMITED_FLOOR else number


@parser
def parse_int(text: str) -> int:
    return int(text.strip())


@parser
def parse_ids(text: str) -> list[int]:
    """cgroup.procs, cgroup.threads, tasks: one id a line."""
    return [int(v) for v in text.split()]


@parser
def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, memory.events, memory.oom_control)."""
    tokens = text.split()
    try:
        # The common case, on the per-read path: pairs all the way.
        if len(tokens) % 2 == 0:
            return dict(zip(tokens[::2], map(int, tokens[1::2])))
    except ValueError:
        pass
    values: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].lstrip("-").isdigit():
            values[fields[0]] = int(fields[1])
    return values


@parser
def parse_cpu_list(text: str) -> list[int]:
    """A cpuset list such as `0-3,8,10-11`; empty text is an empty list."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def format_cpu_range(count: int) -> str:
    """The online list for CPUs numbered 0..count-1."""
    return "0" if count == 1 else f"0-{count - 1}"


@parser
def parse_v1_quota(quota_text: str, period_text: str) -> Fraction | None:
    """cpu.cfs_quota_us / cpu.cfs_period_us in CPUs; -1 means no quota."""
    quota, period = int(quota_text), int(period_text)
    if quota <= 0 or period <= 0:
        return None
    return Fraction(quota, period)


@parser
def parse_cpu_max(text: str) -> Fraction | None:
    """v2 cpu.max `QUOTA PERIOD` (QUOTA may be `max`) in CPUs."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    period = int(fields[1]) if len(fields) > 1 else 100000
    return Fraction(int(fields[0]), period) if period > 0 else None


@parser
def parse_usage_all(text: str) -> dict[int, tuple[int, int]]:
    """cpuacct.usage_all: header `cpu user system`, then `N USER_NS SYSTEM_NS` per CPU."""
    usage: dict[int, tuple[int, int]] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3:
            usage[int(fields[0])] = (int(fields[1]), int(fields[2]))
    return usage


@parser
def parse_percpu(text: str) -> list[int]:
    return [int(v) for v in text.split()]


@parser
def parse_blkio(text: str) -> dict[tuple[int, int], dict[str, int]]:
    """blkio.*_recursive: `MAJ:MIN Op N` lines (Read, Write, Sync, Async, Discard, Total)."""
    devices: dict[tuple[int, int], dict[str, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue  # the trailing grand `Total N` line
        major, minor = fields[0].split(":")
        devices.setdefault((int(major), int(minor)), {})[fields[1]] = int(fields[2])
    return devices


@parser
def parse_io_stat(text: str) -> dict[tuple[int, int], dict[str, int]]:
    """v2 io.stat: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`."""
    devices: dict[tuple[int, int], dict[str, int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major, minor = fields[0].split(":")
        values = {}
        for pair in fields[1:]:
            key, _, value = pair.partition("=")
            if value.isdigit():
                values[key] = int(value)
        devices[(int(major), int(minor))] = values
    return devices
