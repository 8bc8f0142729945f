"""The host's own kernel files, under injected roots."""

from __future__ import annotations

import os

from containerfs.cgroup.files import parse_cpu_list
from containerfs.host.fsread import FileCache


class HostFiles:
    def __init__(self, proc_root: str, sys_root: str, files: FileCache) -> None:
        self.proc_root = proc_root
        self.sys_root = sys_root
        self.files = files

    def proc(self, name: str) -> str:
        return self.files.read(os.path.join(self.proc_root, name))

    def sys(self, name: str) -> str:
        return self.files.read(os.path.join(self.sys_root, name))

    def online_cpus(self) -> list[int]:
        return parse_cpu_list(self.sys("devices/system/cpu/online"))
