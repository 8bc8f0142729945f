"""Directories that are bound whole into containers (see views.cpu_dir).

Kept free of imports: injection (the OCI hook among it) needs the list, not the views.
"""

from collections.abc import Iterable

CPU_DIR = "sys/devices/system/cpu"
OVERLAY_DIRS = (CPU_DIR,)


def bind_targets(paths: Iterable[str]) -> list[str]:
    """What a container gets bound for these served files: an overlaid directory replaces its files."""
    targets = set()
    for path in paths:
        overlay = next((d for d in OVERLAY_DIRS if path == d or path.startswith(d + "/")), None)
        targets.add(overlay or path)
    return sorted(targets)
