"""Per-process files: /proc/PID/stat, status and cgroup."""

from __future__ import annotations

from typing import NamedTuple

from containerfs.host.errors import parser


class ProcStat(NamedTuple):
    state: str
    starttime: int  # clock ticks after boot


@parser
def parse_proc_stat(text: str) -> ProcStat:
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state), rest[19] field 22 (starttime).
    return ProcStat(rest[0], int(rest[19]))


class ProcStatus(NamedTuple):
    ppid: int
    nspid: list[int]  # this pid in each nested pid namespace, outermost first


@parser
def parse_proc_status(text: str) -> ProcStatus:
    ppid = 0
    nspid: list[int] = []
    for line in text.splitlines():
        if line.startswith("PPid:"):
            ppid = int(line.split()[1])
        elif line.startswith("NSpid:"):
            nspid = [int(v) for v in line.split()[1:]]
    if not nspid:
        # NSpid exists since Linux 4.1; without it only the host pid is known.
        raise ValueError("no NSpid line in /proc/PID/status (kernel older than 4.1?)")
    return ProcStatus(ppid, nspid)


@parser
def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Map each controller to the process's cgroup path; the v2 entry is keyed "".

    v1 lines are `ID:ctrl1,ctrl2:/path`; named hierarchies (`name=systemd`) keep their name.
    """
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
            continue
        for controller in controllers.split(","):
            paths[controller] = path
    return paths


@parser
def parse_environ(text: str) -> dict[str, str]:
    """/proc/PID/environ: NUL-separated KEY=VALUE entries (an entry without "=" is skipped)."""
    return dict(entry.split("=", 1) for entry in text.split("\0") if "=" in entry)
