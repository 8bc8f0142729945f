"""/proc/pressure/cpu from the container's cpu.pressure (views.pressure)."""

from __future__ import annotations

from containerfs.views.pressure import view

VIEW = view("cpu")
