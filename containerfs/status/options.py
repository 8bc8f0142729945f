"""`containerfs status` options and alert thresholds.

Apart from the rest of status: the command line is built for every containerfs command,
the OCI hook run at each container start among them, which must not import status's
modules to do so.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple


class Thresholds(NamedTuple):
    memory_warning: float = 80.0  # percent of the memory limit in use (working set)
    memory_critical: float = 95.0
    pids_warning: float = 80.0  # percent of pids.max
    pids_critical: float = 95.0
    window_seconds: float = 900.0  # OOM kills and daemon errors this recent are alerts


_DEFAULTS = Thresholds()


def add_arguments(parser: argparse.ArgumentParser, default_mountpoint: str, default_run_dir: str) -> None:
    parser.add_argument("--mountpoint", default=default_mountpoint, help="the daemon's mountpoint (%(default)s)")
    parser.add_argument("--run-dir", default=default_run_dir, help="the daemon's --run-dir (%(default)s)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the status as JSON (docs/interfaces.md)")
    output.add_argument("--prometheus", action="store_true", help="print Prometheus text exposition")
    output.add_argument(
        "--check", action="store_true", help="monitoring check: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"
    )
    parser.add_argument(
        "--listen",
        metavar="[HOST:]PORT",
        help="with --prometheus: serve /metrics over HTTP, asking the daemon at each scrape (host 127.0.0.1)",
    )
    parser.add_argument("--container", metavar="GLOB", help="only containers whose name, id or cgroup path matches")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the daemon (%(default)s)")
    check = parser.add_argument_group("--check thresholds (percent of the limit; events within the window)")
    for option, default in (
        ("--memory-warning", _DEFAULTS.memory_warning),
        ("--memory-critical", _DEFAULTS.memory_critical),
        ("--pids-warning", _DEFAULTS.pids_warning),
        ("--pids-critical", _DEFAULTS.pids_critical),
    ):
        check.add_argument(option, type=float, default=default, metavar="PCT", help="(default: %(default)g)")
    check.add_argument(
        "--window",
        type=float,
        default=_DEFAULTS.window_seconds,
        metavar="SECONDS",
        help="OOM kills and daemon errors this recent alert (default: %(default)g)",
    )
