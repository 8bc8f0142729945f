"""/proc/meminfo: `Key:   value kB` lines.

Views read the host's file on every read, need four of its ~55 values and change a few
dozen lines: values are found with str.find, and lines by their remembered position,
rather than by parsing every line.
"""

from __future__ import annotations

import functools

from containerfs.host.errors import parser


def _line_start(text: str, key: str) -> int:
    """Offset of the line for key, or -1."""
    if text.startswith(key + ":"):
        return 0
    found = text.find("\n" + key + ":")
    return found + 1 if found >= 0 else -1


@parser
def meminfo_value(text: str, key: str, default: int = 0) -> int:
    start = _line_start(text, key)
    if start < 0:
        return default
    return int(text[start + len(key) + 1 : text.find("\n", start)].split()[0])


@parser
def meminfo_subset(text: str, keys: tuple[str, ...]) -> dict[str, int]:
    """The values of a few keys (0 where this kernel has no such line)."""
    return {key: meminfo_value(text, key) for key in keys}


@functools.cache
def _label(key: str) -> tuple[str, str]:
    # The kernel's show_val_kb(): key and colon padded to 16, then the value to 8.
    return key + ":", f"{key + ':':<16}"


def _line_numbers(lines: list[str]) -> dict[str, int]:
    return {line[: line.find(":")]: number for number, line in enumerate(lines) if ":" in line}


# The kernel prints the same keys in the same order on every read: remember on which line
# each key is (checking it on use) rather than search the text for every key.
_layout: tuple[int, dict[str, int]] = (-1, {})


def render_meminfo(host_text: str, overrides: dict[str, int]) -> str:
    """The host's file with the overridden kB values substituted, layout kept."""
    global _layout
    lines = host_text.split("\n")
    if _layout[0] != len(lines):
        _layout = (len(lines), _line_numbers(lines))
    while True:
        numbers = _layout[1]
        changed = lines.copy()
        for key, value in overrides.items():
            number = numbers.get(key)
            if number is None:
                continue  # a key this kernel does not print
            prefix, label = _label(key)
            if not lines[number].startswith(prefix):
                break
            changed[number] = label + str(value).rjust(8) + " kB"
        else:
            return "\n".join(changed)
        # Same length, other layout (another fixture, a changed kernel): learn this one.
        _layout = (len(lines), _line_numbers(lines))
