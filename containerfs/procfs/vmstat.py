"""/proc/vmstat: `name value` lines, one counter each, in the kernel's order."""

from __future__ import annotations

from containerfs.host.errors import parser


@parser
def parse_vmstat(text: str) -> list[tuple[str, int]]:
    fields = []
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            fields.append((name, int(value)))
    return fields


def render_vmstat(fields: list[tuple[str, int]]) -> str:
    return "".join(f"{name} {value}\n" for name, value in fields)
