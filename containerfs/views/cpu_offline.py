"""/sys/devices/system/cpu/offline: empty, as the visible CPUs are possible, present and online."""

from __future__ import annotations

from containerfs.views.base import View, ViewContext


def render(ctx: ViewContext) -> str:
    # The kernel prints an empty list as a lone newline.
    return "\n"


VIEW = View("sys/devices/system/cpu/offline", lambda host: host.sys("devices/system/cpu/offline"), render)
