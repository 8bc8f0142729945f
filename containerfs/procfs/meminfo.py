"""/proc/meminfo: `Key:   value kB` lines."""

from __future__ import annotations

import re

_LINE = re.compile(r"^([^:\n]+):[ \t]*(\d+)", re.MULTILINE)


def parse_meminfo(text: str) -> dict[str, int]:
    """Each key's value (kB for sizes; a page count for HugePages_*), in file order."""
    return {key: int(value) for key, value in _LINE.findall(text)}


def render_meminfo(host_text: str, overrides: dict[str, int]) -> str:
    """The host's file with the overridden kB values substituted, layout kept."""
    lines = host_text.split("\n")
    for i, line in enumerate(lines):
        key = line[: line.find(":")]
        if key in overrides:
            # The kernel's show_val_kb(): key and colon padded to 16, value to 8.
            lines[i] = f"{key + ':':<16}{overrides[key]:>8} kB"
    return "\n".join(lines)
