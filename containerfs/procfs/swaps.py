"""/proc/swaps."""

from __future__ import annotations

HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def parse_swaps_total(text: str) -> tuple[int, int]:
    """Sum of (size, used) in kB over every swap area listed."""
    size = used = 0
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4:
            size += int(fields[2])
            used += int(fields[3])
    return size, used


def render_swaps(size_kb: int, used_kb: int) -> str:
    if size_kb <= 0:
        return HEADER
    # Same padding as the kernel's swap_show(): the name is padded to 40 columns.
    return HEADER + f"{'none':<40}virtual\t\t{size_kb}\t\t{used_kb}\t\t0\n"
