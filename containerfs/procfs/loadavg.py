"""/proc/loadavg and the kernel's fixed-point exponential decay (kernel/sched/loadavg.c)."""

from __future__ import annotations

from typing import NamedTuple

FSHIFT = 11
FIXED_1 = 1 << FSHIFT
# exp(-5s/1min), exp(-5s/5min), exp(-5s/15min) in fixed point, sampled every 5 s.
EXP = (1884, 2014, 2037)
SAMPLE_SECONDS = 5.0


def decay(load: int, exp: int, active: int) -> int:
    """One calc_load() step: active is the task count already scaled by FIXED_1."""
    new = load * exp + active * (FIXED_1 - exp)
    if active >= load:
        new += FIXED_1 - 1
    return new // FIXED_1


class LoadAvg(NamedTuple):
    averages: tuple[int, int, int]  # fixed point
    running: int
    total: int
    last_pid: int


def _fixed_to_text(value: int) -> str:
    value += FIXED_1 // 200  # the kernel rounds to the nearest hundredth
    return f"{value >> FSHIFT}.{((value & (FIXED_1 - 1)) * 100) >> FSHIFT:02d}"


def render_loadavg(load: LoadAvg) -> str:
    averages = " ".join(_fixed_to_text(v) for v in load.averages)
    return f"{averages} {load.running}/{load.total} {load.last_pid}\n"
