"""/sys/devices/system/cpu bound whole, as lxcfs does, rather than one bind per file.

sysstat (iostat's and sar's "(N CPU)", mpstat) and glibc before 2.35 (get_nprocs_conf:
`getconf _NPROCESSORS_CONF`, `nproc --all` in CentOS 8 or Ubuntu 20.04 images) count the
cpuN directories; a bind per file cannot take a directory away, only a directory of our
own can leave the others out.  Its files: online, possible, present and offline are
views; everything else is the host's, read-only with the host's permission bits.

The container's cpuK shows the host's directory of its K-th visible CPU: the numbering
of cpuinfo, stat and online.  Lookups and attributes follow the host's tree, because the
kernel caches them for every reader of the mount alike: a cpuN beyond the container's
count is not listed, but opening it by name works (it shows the host's cpuN).  Symbolic
links (cpuN/subsystem, cpuN/cpufreq, cpuN/nodeM) are left out: the tools that count CPUs
and lscpu read the files, and a link would lead a container into host paths by name.
"""

from __future__ import annotations

import os
import re

from containerfs.host.files import HostFiles
from containerfs.views.base import Overlay, ViewContext
from containerfs.views.overlays import CPU_DIR

_CPU_ENTRY = re.compile(r"cpu([0-9]+)")


def host_dir(host: HostFiles) -> str:
    return os.path.join(host.sys_root, "devices/system/cpu")


def listed(name: str, ctx: ViewContext) -> bool:
    match = _CPU_ENTRY.fullmatch(name)
    return match is None or int(match.group(1)) < len(ctx.visible_cpus())


def source(rel: str, ctx: ViewContext) -> str:
    first, _, rest = rel.partition("/")
    match = _CPU_ENTRY.fullmatch(first)
    if match is not None:
        cpus = ctx.visible_cpus()
        index = int(match.group(1))
        if index < len(cpus):
            first = f"cpu{cpus[index]}"
    return "/".join(part for part in (host_dir(ctx.host), first, rest) if part)


OVERLAY = Overlay(CPU_DIR, host_dir, listed, source)
