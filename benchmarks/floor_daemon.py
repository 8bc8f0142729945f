#!/usr/bin/env python3
"""containerfs with the views' computation taken out: every reader gets the host's file.

What remains is what every containerfs read pays whatever it computes: the kernel's
FUSE round trips, the binding, the adapter and the core's handles.  bench_reads.py
--floor measures it against lxcfs, to show how much of containerfs's cost is the
binding rather than the views.  Usage: the arguments of `containerfs`, e.g.
floor_daemon.py mount -f MOUNTPOINT; FLOOR_ADAPTER=mfusepy serves through the
high-level mfusepy adapter instead of the low-level one, to compare the two.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from containerfs import cli
from containerfs.daemon.core import ContainerFS
from containerfs.views.base import View


def host_file(self: ContainerFS, view: View, pid: int) -> bytes:
    return view.host_content(self.host).encode()


if __name__ == "__main__":
    ContainerFS.render = host_file  # type: ignore[method-assign]
    if os.environ.get("FLOOR_ADAPTER") == "mfusepy":
        from containerfs.daemon import fuse_adapter, fuse_lowlevel

        fuse_lowlevel.serve = fuse_adapter.serve  # type: ignore[assignment]
    sys.exit(cli.main(sys.argv[1:]))
