"""The caches that keep the per-read path cheap expire, notice reused pids and stay bounded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import containerfs.host.ttl as ttl_module
from containerfs.containers.resolve import Resolver
from containerfs.host.ttl import TtlCache

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WEB_INIT, WEB_EXEC, HOST_SHELL, NOLIMIT = 2000, 2002, 1100, 5200
WEB_PIDNS = "pid:[4026532298]"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ttl_module.time, "monotonic", fake)
    return fake


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


@pytest.mark.parametrize(
    ("elapsed", "recomputed"),
    [(0.0, False), (0.999, False), (1.0, True), (5.0, True)],
)
def test_ttl_cache_entries_expire(clock: Clock, elapsed: float, recomputed: bool) -> None:
    cache: TtlCache[int] = TtlCache(1.0)
    compute = Counter()
    assert cache.get("k", compute) == 1
    clock.now += elapsed
    assert cache.get("k", compute) == (2 if recomputed else 1)
    assert compute.calls == (2 if recomputed else 1)


def test_ttl_cache_expiry_restarts_at_each_computation(clock: Clock) -> None:
    cache: TtlCache[int] = TtlCache(1.0)
    compute = Counter()
    cache.get("k", compute)
    clock.now += 1.5
    assert cache.get("k", compute) == 2
    clock.now += 0.5
    assert cache.get("k", compute) == 2
    cache.put("k", 7)
    clock.now += 0.9
    assert cache.get("k", compute) == 7


def test_ttl_cache_is_bounded_dropping_expired_entries_first(clock: Clock) -> None:
    cache: TtlCache[int] = TtlCache(1.0, max_entries=4)
    for key in range(3):
        cache.put(key, key)
    clock.now += 2  # 0, 1 and 2 expire
    cache.put("live", 1)
    cache.put("new", 2)  # full: the expired entries go, the live one stays
    assert cache.get("live", lambda: -1) == 1
    assert all(cache.get(key, lambda: -1) == -1 for key in range(3))
    for key in range(10):
        cache.put(("many", key), key)
    assert len(cache._entries) <= 4


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    target = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", target, symlinks=True)
    return target / "proc"


def reuse_pid(proc: Path, pid: int, like: int) -> None:
    """pid now names another process: one in like's namespaces and cgroup."""
    for name in ("cgroup", "status", "stat"):
        shutil.copyfile(proc / str(like) / name, proc / str(pid) / name)
    for kind in ("pid", "mnt"):
        link = proc / str(pid) / "ns" / kind
        link.unlink()
        link.symlink_to(os.readlink(proc / str(like) / "ns" / kind))


def namespaces(proc: Path, pid: int) -> tuple[str, str]:
    return os.readlink(proc / str(pid) / "ns" / "pid"), os.readlink(proc / str(pid) / "ns" / "mnt")


def test_a_reused_pid_is_resolved_again_at_once(proc: Path, clock: Clock) -> None:
    resolver = Resolver(str(proc), membership_seconds=60)
    web = resolver.resolve(WEB_EXEC)
    assert web is not None and web.init_pid == WEB_INIT
    reuse_pid(proc, WEB_EXEC, NOLIMIT)  # within the membership time: now a process of nolimit's container
    moved = resolver.resolve(WEB_EXEC)
    nolimit = resolver.resolve(NOLIMIT)
    assert moved is not None and nolimit is not None and moved.cgroups == nolimit.cgroups != web.cgroups
    reuse_pid(proc, WEB_EXEC, HOST_SHELL)
    assert resolver.resolve(WEB_EXEC) is None


def test_membership_is_remembered_then_read_again(proc: Path, clock: Clock) -> None:
    resolver = Resolver(str(proc), membership_seconds=1.0)
    web = resolver.resolve(WEB_EXEC)
    assert web is not None
    # The same process moves to another cgroup: noticed only after the membership time.
    (proc / str(WEB_EXEC) / "cgroup").write_text("0::/elsewhere\n")
    (proc / str(WEB_INIT) / "cgroup").write_text("0::/elsewhere/init\n")
    assert resolver.resolve(WEB_EXEC) == web
    clock.now += 1.0
    moved = resolver.resolve(WEB_EXEC)
    assert moved is not None and moved.cgroups == {"": "/elsewhere"}


def test_a_cached_init_that_left_its_namespace_is_found_again(proc: Path) -> None:
    resolver = Resolver(str(proc))
    assert resolver.init_of(WEB_EXEC, WEB_PIDNS) == WEB_INIT
    reuse_pid(proc, WEB_INIT, HOST_SHELL)  # the init died and its pid was reused on the host
    with pytest.raises(Exception, match="no init process"):
        resolver.init_of(WEB_EXEC, WEB_PIDNS)


def test_the_init_cache_keeps_only_namespaces_that_still_exist(proc: Path) -> None:
    resolver = Resolver(str(proc))
    live: dict[str, int] = {}
    for pid in (WEB_EXEC, 4001, 5000, 5100, NOLIMIT):  # each in a pid namespace of its own
        # Namespaces of containers that exited (their inits are gone): more than it keeps.
        for n in range(5000):
            resolver._init_by_ns[f"pid:[{n}]"] = 900_000 + n
        pidns = namespaces(proc, pid)[0]
        live[pidns] = resolver.init_of(pid, pidns)
        assert resolver._init_by_ns == live, "the dead namespaces go, the live ones stay"
