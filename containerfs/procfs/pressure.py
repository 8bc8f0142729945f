"""Pressure stall information: /proc/pressure/{cpu,memory,io} and cgroup v2 *.pressure.

Both have the same lines: `some avg10=A avg60=B avg300=C total=T`, then `full ...`
(memory and io since Linux 4.20, cpu since 5.13).  Averages are percentages with two
decimals, kept here as hundredths so a line renders back exactly; total is microseconds.
"""

from __future__ import annotations

from typing import NamedTuple

from containerfs.host.errors import parser

RESOURCES = ("cpu", "memory", "io")


class PressureLine(NamedTuple):
    kind: str  # "some" or "full"
    avg10: int  # hundredths of a percent
    avg60: int
    avg300: int
    total_us: int


def _hundredths(text: str) -> int:
    whole, _, fraction = text.partition(".")
    if not whole.isdigit() or not (fraction + "00")[:2].isdigit():
        raise ValueError(f"not a pressure average: {text!r}")
    return int(whole) * 100 + int((fraction + "00")[:2])


@parser
def parse_pressure(text: str) -> list[PressureLine]:
    lines = []
    for line in text.splitlines():
        if not line.strip():
            continue
        kind, *pairs = line.split()
        values = dict(pair.partition("=")[::2] for pair in pairs)
        try:
            lines.append(
                PressureLine(
                    kind,
                    _hundredths(values["avg10"]),
                    _hundredths(values["avg60"]),
                    _hundredths(values["avg300"]),
                    int(values["total"]),
                )
            )
        except KeyError as missing:
            raise ValueError(f"pressure line without {missing}: {line!r}") from None
    if not lines or lines[0].kind != "some":
        raise ValueError("pressure file without a `some` line")
    return lines


def _percent(hundredths: int) -> str:
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def render_pressure(lines: list[PressureLine]) -> str:
    return "".join(
        f"{line.kind} avg10={_percent(line.avg10)} avg60={_percent(line.avg60)} "
        f"avg300={_percent(line.avg300)} total={line.total_us}\n"
        for line in lines
    )
