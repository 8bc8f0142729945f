"""/proc/pressure/memory from the container's memory.pressure (views.pressure)."""

from __future__ import annotations

from containerfs.views.pressure import view

VIEW = view("memory")
