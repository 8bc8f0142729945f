"""/proc/pressure/io from the container's io.pressure (views.pressure)."""

from __future__ import annotations

from containerfs.views.pressure import view

VIEW = view("io")
