"""The status for people: a header about the daemon, one table row per container."""

from __future__ import annotations

import fnmatch

from containerfs.status.model import Container, Daemon, Status, Views


def human_bytes(value: int) -> str:
    """IEC units like `free -h`: 512M, 1.5G, 0."""
    number, unit = float(value), ""
    for bigger in "KMGTP":
        if number < 1024:
            break
        number, unit = number / 1024, bigger
    if not unit:
        return str(value)
    return f"{number:.1f}{unit}" if number < 10 else f"{number:.0f}{unit}"


def human_duration(seconds: float) -> str:
    """Two units at most: 42s, 5m12s, 3h05m, 2d03h."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def human_latency(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


def select(status: Status, pattern: str) -> Status:
    """Only the containers whose name, id, short id or cgroup path matches the glob."""

    def matches(row: Container) -> bool:
        return any(fnmatch.fnmatchcase(value, pattern) for value in (row.name, row.id, row.short_id, row.cgroup))

    return status._replace(containers=[row for row in status.containers if matches(row)])


def _percent(part: int, whole: int | None) -> str:
    return "-" if not whole else f"{100 * part / whole:.0f}%"


def _views(views: Views | None) -> str:
    if views is None:
        return "?"
    if views.live == views.stale == 0:
        return "-"
    text = f"{views.live}/{views.total}"
    return f"{text} +{views.stale} stale" if views.stale else text


def _limit(value: int | None) -> str:
    return "-" if value is None else human_bytes(value)


def row_cells(row: Container) -> list[str]:
    memory, swap, cpu, load, pids, oom = row.memory, row.swap, row.cpu, row.load, row.pids, row.oom
    return [
        row.name,
        row.kind,
        "?" if memory is None else f"{human_bytes(memory.usage)}/{_limit(memory.limit)}",
        "?" if memory is None else _percent(memory.working_set, memory.limit),
        "-" if swap is None else f"{human_bytes(swap.usage)}/{_limit(swap.limit)}",
        "?" if cpu is None else str(cpu.visible),
        "-" if cpu is None or cpu.quota is None else f"{cpu.quota:.2f}",
        "?" if cpu is None else human_duration(cpu.usage_seconds),
        "-" if load is None else f"{load.one:.2f} {load.five:.2f} {load.fifteen:.2f}",
        "?" if pids is None else f"{pids.current}/{'-' if pids.limit is None else pids.limit}",
        "?" if oom is None else str(oom.kills),
        "?" if row.uptime_seconds is None else human_duration(row.uptime_seconds),
        _views(row.views),
        row.cgroup,
    ]


HEADINGS = ["NAME", "KIND", "MEMORY", "MEM%", "SWAP", "CPUS", "QUOTA", "CPU", "LOAD", "PIDS", "OOM", "UP", "VIEWS"]


def daemon_lines(daemon: Daemon, collect_seconds: float) -> list[str]:
    reads, latency, sampler = daemon.reads, daemon.latency, daemon.sampler
    total = reads.container + reads.host + reads.fallback
    per_pass = sampler.cpu_seconds / sampler.passes if sampler.passes else None
    share = 100 * sampler.cpu_seconds / daemon.uptime_seconds if daemon.uptime_seconds > 0 else 0.0
    last_error = (
        "" if daemon.last_error_age_seconds is None else f" (last {human_duration(daemon.last_error_age_seconds)} ago)"
    )
    return [
        f"containerfs {daemon.version}, pid {daemon.pid}, serving {daemon.mountpoint} for "
        f"{human_duration(daemon.uptime_seconds)}; cgroup {daemon.cgroup_layout}, libfuse {daemon.libfuse}",
        f"reads {total} (containers {reads.container}, host {reads.host}, fallbacks to the host's file "
        f"{reads.fallback}); errors {daemon.errors}{last_error}",
        f"read latency p50 {human_latency(latency.p50_seconds)}, p99 {human_latency(latency.p99_seconds)} "
        f"over {latency.samples} reads that rendered",
        f"load sampler: {sampler.containers} tracked, {human_latency(per_pass)} CPU per pass, "
        f"{share:.2f}% of a CPU; this status took {human_latency(collect_seconds)}",
    ]


def render_table(status: Status) -> str:
    lines = daemon_lines(status.daemon, status.collect_seconds)
    lines.append("")
    if not status.containers:
        lines.append("no containers")
        return "\n".join(lines) + "\n"
    rows = [[*HEADINGS, "CGROUP"], *(row_cells(row) for row in status.containers)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADINGS))]
    for row in rows:
        # The cgroup path goes last, unpadded: long paths only widen their own line.
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return "\n".join(lines) + "\n"
