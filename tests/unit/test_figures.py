"""The working set and a process's uptime: one formula each, shared by the views and status."""

from __future__ import annotations

import pytest

from containerfs.cgroup.records import MemoryCounters
from containerfs.containers.memfigures import working_set
from containerfs.views.uptime import seconds_up


def counters(usage: int, stat: dict[str, int]) -> MemoryCounters:
    return MemoryCounters(None, usage, stat, False, None, 0)


@pytest.mark.parametrize(
    ("usage", "stat", "expected"),
    [
        (100, {"inactive_file": 30}, 70),
        (100, {"active_file": 30}, 100),  # only the inactive page cache can be given back
        (100, {}, 100),
        (100, {"inactive_file": 130}, 0),  # counters read at different instants: never negative
    ],
)
def test_working_set(usage: int, stat: dict[str, int], expected: int) -> None:
    assert working_set(counters(usage, stat)) == expected


@pytest.mark.parametrize(
    ("host_up", "start_ticks", "ticks", "expected"),
    [
        (100.0, 5000, 100, 50.0),
        (100.0, 0, 100, 100.0),
        (100.0, 20000, 100, 0.0),  # started "after" the host's uptime was read: never negative
        (10.0, 250, 250, 9.0),
    ],
)
def test_seconds_up(host_up: float, start_ticks: int, ticks: int, expected: float) -> None:
    assert seconds_up(host_up, start_ticks, ticks) == pytest.approx(expected)
