"""The typed records of a status answer, and their JSON form (docs/interfaces.md).

Units: bytes, seconds, CPUs.  None (JSON null) means "no limit" for limits and "not
known" for figures (a controller that is off, a container the load sampler does not track).
"""

from __future__ import annotations

from typing import Any, NamedTuple

SCHEMA = 1


class Reads(NamedTuple):
    container: int  # reads that rendered a container's view
    host: int  # host readers, served the host's file by design
    fallback: int  # container readers served the host's file after a failure


class Latency(NamedTuple):
    samples: int
    sum_seconds: float
    p50_seconds: float | None
    p99_seconds: float | None


class SamplerCost(NamedTuple):
    containers: int  # containers whose load is sampled (those that read a view)
    passes: int
    cpu_seconds: float  # CPU time of every pass so far
    last_pass_seconds: float | None  # wall time of the latest pass


class Daemon(NamedTuple):
    pid: int
    version: str
    mountpoint: str
    uptime_seconds: float
    cgroup_layout: str  # v1, v2, hybrid
    libfuse: str
    reads: Reads
    errors: int
    last_error_age_seconds: float | None
    latency: Latency
    sampler: SamplerCost


class Memory(NamedTuple):
    usage: int
    working_set: int  # usage minus inactive page cache: what the kernel cannot easily reclaim
    limit: int | None


class Swap(NamedTuple):
    usage: int
    limit: int | None


class Cpu(NamedTuple):
    visible: int  # CPUs the views show
    quota: float | None  # CPUs worth of CFS quota
    usage_seconds: float  # user + system since the cgroup was made


class Load(NamedTuple):
    one: float
    five: float
    fifteen: float


class Pids(NamedTuple):
    current: int
    limit: int | None


class Oom(NamedTuple):
    kills: int
    last_kill_age_seconds: float | None  # since the daemon saw the count rise; None: not seen


class Views(NamedTuple):
    live: int  # views mounted in the container from this daemon's mount
    stale: int  # containerfs views from another (dead or replaced) mount
    total: int  # views the daemon serves


class Container(NamedTuple):
    name: str
    kind: str
    id: str
    short_id: str
    init_pid: int
    cgroup: str
    memory: Memory | None
    swap: Swap | None
    cpu: Cpu | None
    load: Load | None
    uptime_seconds: float | None
    pids: Pids | None
    oom: Oom | None
    views: Views | None


class Status(NamedTuple):
    schema: int
    daemon: Daemon
    containers: list[Container]
    collect_seconds: float  # what answering this request cost the daemon


_NESTED: dict[type, dict[str, type]] = {
    Daemon: {"reads": Reads, "latency": Latency, "sampler": SamplerCost},
    Container: {
        "memory": Memory,
        "swap": Swap,
        "cpu": Cpu,
        "load": Load,
        "pids": Pids,
        "oom": Oom,
        "views": Views,
    },
    Status: {"daemon": Daemon},
}


def to_json(value: Any) -> Any:
    """Records to plain dicts and lists, for json.dumps."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {key: to_json(item) for key, item in value._asdict().items()}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    return value


def _decode(cls: Any, data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    nested = _NESTED.get(cls, {})
    values = {}
    for field in cls._fields:
        if field not in data:
            raise ValueError(f"{cls.__name__}: no {field!r}")
        raw = data[field]
        kind = nested.get(field)
        values[field] = raw if kind is None or raw is None else _decode(kind, raw)
    return cls(**values)


def status_from_json(data: Any) -> Status:
    """The records of a daemon's answer; ValueError says what is malformed."""
    if not isinstance(data, dict):
        raise ValueError("the status is not an object")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"the daemon speaks status schema {data.get('schema')!r}, this command {SCHEMA}")
    containers = data.get("containers")
    if not isinstance(containers, list):
        raise ValueError("Status: no container list")
    status: Status = _decode(Status, {**data, "containers": None})
    return status._replace(containers=[_decode(Container, item) for item in containers])
