#!/usr/bin/env python3
"""containerfs with the views' computation taken out: every reader gets the host's file.

What remains is what every containerfs read pays whatever it computes: the kernel's
FUSE round trips, libfuse, mfusepy and the adapter.  bench_reads.py --floor measures
it against lxcfs, to show how much of containerfs's cost is the binding rather than
the views.  Usage: floor_daemon.py RUN_DIR MOUNTPOINT (stays in the foreground; RUN_DIR
holds the control socket, as `mount --run-dir`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from containerfs.daemon import mount
from containerfs.daemon.core import ContainerFS, Options
from containerfs.views.base import View


def host_file(self: ContainerFS, view: View, pid: int) -> bytes:
    return view.host_content(self.host).encode()


if __name__ == "__main__":
    ContainerFS.render = host_file  # type: ignore[method-assign]
    run_dir, mountpoint = sys.argv[1:3]
    sys.exit(mount.mount(mountpoint, Options(), True, "WARNING", run_dir, None))
