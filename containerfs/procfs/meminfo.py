"""/proc/meminfo: `Key:   value kB` lines.

Views read the host's file on every read and change a few dozen of its ~55 lines, so
both directions work by locating keys with str.find rather than walking every line.
"""

from __future__ import annotations

import re

_LINE = re.compile(r"^([^:\n]+):[ \t]*(\d+)", re.MULTILINE)


def parse_meminfo(text: str) -> dict[str, int]:
    """Each key's value (kB for sizes; a page count for HugePages_*), in file order."""
    return {key: int(value) for key, value in _LINE.findall(text)}


def _line_start(text: str, key: str) -> int:
    """Offset of the line for key, or -1."""
    if text.startswith(key + ":"):
        return 0
    found = text.find("\n" + key + ":")
    return found + 1 if found >= 0 else -1


def meminfo_value(text: str, key: str, default: int = 0) -> int:
    start = _line_start(text, key)
    if start < 0:
        return default
    return int(text[start + len(key) + 1 : text.find("\n", start)].split()[0])


def meminfo_subset(text: str, keys: tuple[str, ...]) -> dict[str, int]:
    """The values of a few keys (0 where this kernel has no such line)."""
    return {key: meminfo_value(text, key) for key in keys}


def render_meminfo(host_text: str, overrides: dict[str, int]) -> str:
    """The host's file with the overridden kB values substituted, layout kept."""
    spans = []
    for key, value in overrides.items():
        start = _line_start(host_text, key)
        if start >= 0:
            end = host_text.find("\n", start)
            # The kernel's show_val_kb(): key and colon padded to 16, value to 8.
            spans.append((start, len(host_text) if end < 0 else end, f"{key + ':':<16}{value:>8} kB"))
    spans.sort()
    pieces = []
    position = 0
    for start, end, line in spans:
        pieces.append(host_text[position:start])
        pieces.append(line)
        position = end
    pieces.append(host_text[position:])
    return "".join(pieces)
