"""/proc/uptime: `seconds-up idle-seconds-summed-over-cpus`."""

from __future__ import annotations

from typing import NamedTuple

from containerfs.host.errors import parser


class Uptime(NamedTuple):
    up: float
    idle: float


@parser
def parse_uptime(text: str) -> Uptime:
    up, idle = text.split()[:2]
    return Uptime(float(up), float(idle))


def render_uptime(uptime: Uptime) -> str:
    return f"{uptime.up:.2f} {uptime.idle:.2f}\n"
