#!/usr/bin/env python3
"""Cost of computing each view, without FUSE: microseconds per render.

By default over the fixture hosts (no root needed): the web container's init (pid 2000)
in tests/fixtures/{v1,v2,hybrid}.  With --pid PID, over the live host for that process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from containerfs.daemon.core import ContainerFS, Options  # noqa: E402
from containerfs.views.registry import VIEWS  # noqa: E402


def per_render_us(fs: ContainerFS, pid: int, path: str, seconds: float) -> float:
    """The best of ten batches: other load on the machine only ever adds time."""
    view = VIEWS[path]
    fs.render(view, pid)  # warm the descriptor cache and the registry
    best = float("inf")
    for _ in range(10):
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds / 10:
            for _ in range(50):
                fs.render(view, pid)
            count += 50
        best = min(best, (time.perf_counter() - start) / count * 1e6)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pid", type=int, help="a live process to render for (default: the fixture hosts)")
    parser.add_argument("--seconds", type=float, default=0.5, help="per view (default %(default)s)")
    args = parser.parse_args()
    if args.pid is not None:
        hosts = {"live": (Options(), args.pid)}
    else:
        fixtures = REPO / "tests" / "fixtures"
        hosts = {
            name: (
                Options(str(fixtures / name / "proc"), str(fixtures / name / "sys"), str(fixtures / name / "cgroup")),
                2000,
            )
            for name in ("v1", "v2", "hybrid")
        }
    print(f"{'view':<32}" + "".join(f"{name:>10}" for name in hosts) + "   (us per render)")
    filesystems = {name: (ContainerFS(options), pid) for name, (options, pid) in hosts.items()}
    for path in VIEWS:
        row = [per_render_us(fs, pid, path, args.seconds) for fs, pid in filesystems.values()]
        print(f"{path:<32}" + "".join(f"{us:>10.1f}" for us in row))
    fallbacks = {name: fs.stats.fallbacks for name, (fs, _) in filesystems.items() if fs.stats.fallbacks}
    if fallbacks:
        print(f"warning: renders fell back to the host's file: {fallbacks}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
