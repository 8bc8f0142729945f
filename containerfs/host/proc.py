"""The one way to reach a process's files under an injected /proc (like prometheus/procfs's Proc).

ProcFS(root).process(pid) builds every per-process path.  A process can exit between any
two reads: whatever file was being read, that is ProcessGone (ENOENT or ESRCH, or text cut
short because the process went), never an OSError or a ParseError to tell apart by hand.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import TypeVar

from containerfs.host.errors import ParseError, ProcessGone
from containerfs.host.fsread import read_text
from containerfs.procfs.mountinfo import Mount, parse_mountinfo
from containerfs.procfs.process import (
    ProcStat,
    ProcStatus,
    parse_environ,
    parse_proc_cgroup,
    parse_proc_stat,
    parse_proc_status,
)

__all__ = ["ProcFS", "Process", "ProcessGone"]

T = TypeVar("T")
# What a read of /proc/PID/... fails with once the process is gone.
_GONE = (errno.ENOENT, errno.ESRCH)


class Process:
    def __init__(self, root: str, pid: int | str) -> None:
        self.root = root
        self.pid = pid
        self.directory = f"{root}/{pid}"

    def __repr__(self) -> str:
        return f"Process({self.directory!r})"

    def path(self, name: str) -> str:
        """The path of one of the process's files, for what must open it itself (setns)."""
        return f"{self.directory}/{name}"

    def exists(self) -> bool:
        return os.path.exists(self.directory)

    def _gone(self, err: OSError) -> ProcessGone | OSError:
        return ProcessGone(f"process {self.pid} is gone ({err.strerror})") if err.errno in _GONE else err

    def read(self, name: str) -> str:
        try:
            return read_text(self.path(name))
        except OSError as err:
            raise self._gone(err) from err

    def _parse(self, name: str, parse: Callable[[str], T]) -> T:
        text = self.read(name)
        try:
            return parse(text)
        except ParseError as err:
            # A file read as its process exits comes back empty or cut short.
            if not self.exists():
                raise ProcessGone(f"process {self.pid} is gone (its {name} was cut short)") from err
            raise

    def stat(self) -> ProcStat:
        return self._parse("stat", parse_proc_stat)

    def status(self) -> ProcStatus:
        return self._parse("status", parse_proc_status)

    def cgroups(self) -> dict[str, str]:
        """Controller -> cgroup path; v2's under the "" key."""
        return self._parse("cgroup", parse_proc_cgroup)

    def environ(self) -> dict[str, str]:
        """The environment the process was started with."""
        return self._parse("environ", parse_environ)

    def mountinfo(self) -> list[Mount]:
        return self._parse("mountinfo", parse_mountinfo)

    def ns(self, kind: str) -> str:
        """The namespace link, e.g. "pid:[4026531836]" for kind "pid"."""
        try:
            return os.readlink(self.path(f"ns/{kind}"))
        except OSError as err:
            raise self._gone(err) from err

    def tasks(self) -> list[int]:
        """The thread ids of the process."""
        try:
            return sorted(int(entry) for entry in os.listdir(self.path("task")) if entry.isdigit())
        except OSError as err:
            raise self._gone(err) from err


class ProcFS:
    def __init__(self, root: str) -> None:
        self.root = root

    def process(self, pid: int | str) -> Process:
        return Process(self.root, pid)

    def self_process(self) -> Process:
        """The reading process itself (/proc/self)."""
        return Process(self.root, "self")

    def pids(self) -> list[int]:
        """Every process, in pid order."""
        return sorted(int(entry) for entry in os.listdir(self.root) if entry.isdigit())
