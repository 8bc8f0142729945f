"""`status --check`: thresholds over a status, as monitoring plugins report them.

Exit codes follow the Nagios plugin convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
The first output line is the summary (with performance data after `|`); each problem
follows on its own line.
"""

from __future__ import annotations

from typing import NamedTuple

from containerfs.status.model import Status
from containerfs.status.options import Thresholds
from containerfs.status.render import human_bytes, human_duration

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
LABELS = ("OK", "WARNING", "CRITICAL", "UNKNOWN")


class Problem(NamedTuple):
    level: int
    text: str


class CheckResult(NamedTuple):
    code: int
    problems: list[Problem]


def _level(percent: float, warning: float, critical: float) -> int:
    if percent >= critical:
        return CRITICAL
    return WARNING if percent >= warning else OK


def evaluate(status: Status, thresholds: Thresholds) -> CheckResult:
    problems: list[Problem] = []
    for row in status.containers:
        memory, pids, oom = row.memory, row.pids, row.oom
        if memory is not None and memory.limit:
            # The working set, not usage: page cache fills any limit and is reclaimed at will.
            percent = 100 * memory.working_set / memory.limit
            level = _level(percent, thresholds.memory_warning, thresholds.memory_critical)
            if level:
                problems.append(
                    Problem(level, f"{row.name}: memory {percent:.0f}% of its {human_bytes(memory.limit)} limit")
                )
        if pids is not None and pids.limit:
            percent = 100 * pids.current / pids.limit
            level = _level(percent, thresholds.pids_warning, thresholds.pids_critical)
            if level:
                problems.append(Problem(level, f"{row.name}: {pids.current} of {pids.limit} pids ({percent:.0f}%)"))
        age = None if oom is None else oom.last_kill_age_seconds
        if oom is not None and age is not None and age <= thresholds.window_seconds:
            problems.append(Problem(CRITICAL, f"{row.name}: OOM kill {human_duration(age)} ago ({oom.kills} in total)"))
    daemon = status.daemon
    if daemon.last_error_age_seconds is not None and daemon.last_error_age_seconds <= thresholds.window_seconds:
        ago = human_duration(daemon.last_error_age_seconds)
        problems.append(Problem(WARNING, f"daemon: {daemon.errors} errors, the last {ago} ago (see its log)"))
    problems.sort(key=lambda p: -p.level)
    return CheckResult(max((p.level for p in problems), default=OK), problems)


def render_check(status: Status, result: CheckResult) -> str:
    daemon = status.daemon
    if result.problems:
        summary = "; ".join(p.text for p in result.problems)
    else:
        up = human_duration(daemon.uptime_seconds)
        summary = f"{len(status.containers)} containers, daemon pid {daemon.pid} up {up}"
    perfdata = f"containers={len(status.containers)} errors={daemon.errors}c fallbacks={daemon.reads.fallback}c"
    lines = [f"CONTAINERFS {LABELS[result.code]} - {summary} | {perfdata}"]
    lines.extend(f"{LABELS[p.level]}: {p.text}" for p in result.problems)
    return "\n".join(lines) + "\n"


def render_unknown(reason: str) -> str:
    return f"CONTAINERFS {LABELS[UNKNOWN]} - {reason}\n"
