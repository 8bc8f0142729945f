"""/proc/cpuinfo: one block per CPU, separated by blank lines."""

from __future__ import annotations

from typing import NamedTuple

from containerfs.host.errors import parser


class CpuinfoBlock(NamedTuple):
    processor: int
    lines: list[str]


@parser
def parse_cpuinfo(text: str) -> tuple[list[CpuinfoBlock], str]:
    """Return the per-processor blocks and any trailing text that belongs to no processor.

    arm64 and x86 print one block per CPU starting with `processor`; s390x and some arm32
    kernels print a shared header before the blocks, which lands in the trailing text as
    well, so callers can tell a layout they do not understand (no blocks) from one they do.
    """
    blocks: list[CpuinfoBlock] = []
    stray: list[str] = []
    for chunk in text.split("\n\n"):
        lines = [line for line in chunk.split("\n") if line]
        if not lines:
            continue
        key, _, value = lines[0].partition(":")
        if key.strip() == "processor" and value.strip().isdigit():
            blocks.append(CpuinfoBlock(int(value), lines))
        else:
            stray.extend(lines)
    return blocks, "\n".join(stray)


def _set_field(lines: list[str], key: str, value: int) -> list[str]:
    out = []
    for line in lines:
        name, sep, _ = line.partition(":")
        if sep and name.strip() == key:
            line = f"{name}: {value}"
        out.append(line)
    return out


def render_cpuinfo(blocks: list[CpuinfoBlock]) -> str:
    """Render blocks renumbered 0..n-1, presenting them as one package of n cores."""
    count = len(blocks)
    out = []
    for index, block in enumerate(blocks):
        lines = _set_field(block.lines, "processor", index)
        # x86 only: without this, tools that multiply `cpu cores` by packages see the host.
        lines = _set_field(lines, "siblings", count)
        lines = _set_field(lines, "cpu cores", count)
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)
