"""/proc/swaps."""

from __future__ import annotations

HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def render_swaps(size_kb: int, used_kb: int) -> str:
    if size_kb <= 0:
        return HEADER
    # Same padding as the kernel's swap_show(): the name is padded to 40 columns.
    return HEADER + f"{'none':<40}virtual\t\t{size_kb}\t\t{used_kb}\t\t0\n"
