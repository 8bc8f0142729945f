"""`status --prometheus`: the Prometheus text exposition format (version 0.0.4)."""

from __future__ import annotations

import math

from containerfs.status.model import Container, Status


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items()) + "}"


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    return str(value) if isinstance(value, int) else repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self._declared: set[str] = set()

    def metric(
        self, name: str, kind: str, help_text: str, value: float | None, labels: dict[str, str] | None = None
    ) -> None:
        family = name.removesuffix("_sum").removesuffix("_count") if kind == "summary" else name
        if family not in self._declared:
            self._declared.add(family)
            self.lines.append(f"# HELP {family} {help_text}")
            self.lines.append(f"# TYPE {family} {kind}")
        self.lines.append(f"{name}{_labels(labels or {})} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


_UP = "Whether a daemon answered for the mountpoint."


def render_down(mountpoint: str) -> str:
    out = _Exposition()
    out.metric("containerfs_up", "gauge", _UP, 0, {"mountpoint": mountpoint})
    return out.text()


def _container(out: _Exposition, row: Container) -> None:
    labels = {"name": row.name, "kind": row.kind, "id": row.short_id, "cgroup": row.cgroup}

    def gauge(name: str, help_text: str, value: float | None, kind: str = "gauge", **extra: str) -> None:
        out.metric(f"containerfs_container_{name}", kind, help_text, value, {**labels, **extra})

    if row.memory is not None:
        gauge("memory_usage_bytes", "Memory in use, page cache included.", row.memory.usage)
        gauge("memory_working_set_bytes", "Memory in use minus inactive page cache.", row.memory.working_set)
        if row.memory.limit is not None:
            gauge("memory_limit_bytes", "Effective memory limit (absent: none).", row.memory.limit)
    if row.swap is not None:
        gauge("swap_usage_bytes", "Swap in use.", row.swap.usage)
        if row.swap.limit is not None:
            gauge("swap_limit_bytes", "Effective swap limit (absent: none).", row.swap.limit)
    if row.cpu is not None:
        gauge("cpus", "CPUs the views show.", row.cpu.visible)
        if row.cpu.quota is not None:
            gauge("cpu_quota", "CFS quota in CPUs (absent: none).", row.cpu.quota)
        gauge("cpu_usage_seconds_total", "CPU time used, user and system.", row.cpu.usage_seconds, "counter")
    if row.load is not None:
        for name, value in (("load1", row.load.one), ("load5", row.load.five), ("load15", row.load.fifteen)):
            gauge(name, "Load average its /proc/loadavg shows.", value)
    if row.uptime_seconds is not None:
        gauge("uptime_seconds", "Seconds since its first process started.", row.uptime_seconds)
    if row.pids is not None:
        gauge("pids", "Tasks in the cgroup.", row.pids.current)
        if row.pids.limit is not None:
            gauge("pids_limit", "Effective pids.max (absent: none).", row.pids.limit)
    if row.oom is not None:
        gauge("oom_kills_total", "Processes killed by the OOM killer in it.", row.oom.kills, "counter")
    if row.views is not None:
        for state, count in (("live", row.views.live), ("stale", row.views.stale)):
            gauge("views_mounted", "containerfs views mounted in it, by mount state.", count, state=state)


def render_prometheus(status: Status) -> str:
    out, daemon = _Exposition(), status.daemon
    out.metric("containerfs_up", "gauge", _UP, 1, {"mountpoint": daemon.mountpoint})
    out.metric(
        "containerfs_info",
        "gauge",
        "The daemon's version and host.",
        1,
        {"version": daemon.version, "pid": str(daemon.pid), "layout": daemon.cgroup_layout, "libfuse": daemon.libfuse},
    )
    out.metric("containerfs_uptime_seconds", "gauge", "Seconds the daemon has served.", daemon.uptime_seconds)
    for result, count in (
        ("container", daemon.reads.container),
        ("host", daemon.reads.host),
        ("fallback", daemon.reads.fallback),
    ):
        out.metric("containerfs_reads_total", "counter", "Reads served, by what they got.", count, {"result": result})
    out.metric("containerfs_errors_total", "counter", "Unexpected failures (see the log).", daemon.errors)
    latency = daemon.latency
    help_latency = "Time to render a read at offset 0."
    for quantile, value in (("0.5", latency.p50_seconds), ("0.99", latency.p99_seconds)):
        out.metric("containerfs_read_duration_seconds", "summary", help_latency, value, {"quantile": quantile})
    out.metric("containerfs_read_duration_seconds_sum", "summary", help_latency, latency.sum_seconds)
    out.metric("containerfs_read_duration_seconds_count", "summary", help_latency, latency.samples)
    sampler = daemon.sampler
    out.metric("containerfs_sampler_containers", "gauge", "Containers whose load is sampled.", sampler.containers)
    out.metric("containerfs_sampler_passes_total", "counter", "Load sampling passes.", sampler.passes)
    out.metric("containerfs_sampler_cpu_seconds_total", "counter", "CPU time of load sampling.", sampler.cpu_seconds)
    out.metric("containerfs_status_collect_seconds", "gauge", "Time this status took.", status.collect_seconds)
    out.metric("containerfs_containers", "gauge", "Running containers.", len(status.containers))
    for row in status.containers:
        _container(out, row)
    return out.text()
