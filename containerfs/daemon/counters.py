"""What the daemon counts about itself, for `containerfs status`."""

from __future__ import annotations

import time


class Stats:
    # Written by the FUSE loop and the sampler, read by the control thread; a lost
    # increment in a race is acceptable for these figures.
    def __init__(self) -> None:
        self.renders = 0  # container readers served their view
        self.host_reads = 0  # readers on the host, served the host's file by design
        self.fallbacks = 0  # container readers served the host's file after an error
        self.errors = 0  # failures that are bugs or broken hosts: EIO replies, unexpected exceptions
        self.last_error: float | None = None  # time.monotonic() of the latest error

    def error(self) -> None:
        self.errors += 1
        self.last_error = time.monotonic()
