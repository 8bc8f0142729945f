"""`containerfs status`: ask the daemon of a mountpoint, print a table, JSON, a check or metrics."""

from __future__ import annotations

import argparse
import json
import os
import sys

from containerfs.daemon.control import ControlError, NoDaemon, request, socket_path
from containerfs.status.check import UNKNOWN, evaluate, render_check, render_unknown
from containerfs.status.model import Status, status_from_json, to_json
from containerfs.status.options import Thresholds
from containerfs.status.prometheus import render_down, render_prometheus
from containerfs.status.render import render_table, select


def _fetch(mountpoint: str, run_dir: str, timeout: float) -> Status:
    answer = request(socket_path(mountpoint, run_dir), {"request": "status"}, timeout)
    return status_from_json(answer.get("status"))


def _scrape(mountpoint: str, run_dir: str, timeout: float, pattern: str | None) -> str:
    try:
        status = _fetch(mountpoint, run_dir, timeout)
    except (ControlError, ValueError):
        return render_down(mountpoint)
    return render_prometheus(select(status, pattern) if pattern else status)


def _fail(args: argparse.Namespace, mountpoint: str, reason: str) -> int:
    """No status to show: one line, in the form the output mode's consumer expects."""
    if args.check:
        sys.stdout.write(render_unknown(reason))
        return UNKNOWN
    if args.prometheus:
        sys.stdout.write(render_down(mountpoint))
    print(f"containerfs: {reason}", file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    mountpoint = os.path.abspath(args.mountpoint)
    if args.listen is not None:
        # http.server is imported only here: every containerfs command, the OCI hook run
        # at each container start among them, would pay for its import.
        from containerfs.status.exporter import parse_listen, serve

        if not args.prometheus:
            print("containerfs: --listen serves --prometheus output: add --prometheus", file=sys.stderr)
            return 1
        try:
            address = parse_listen(args.listen)
        except ValueError as err:
            print(f"containerfs: {err}", file=sys.stderr)
            return 1
        return serve(address, lambda: _scrape(mountpoint, args.run_dir, args.timeout, args.container))
    thresholds = Thresholds(
        args.memory_warning, args.memory_critical, args.pids_warning, args.pids_critical, args.window
    )
    if thresholds.memory_warning > thresholds.memory_critical or thresholds.pids_warning > thresholds.pids_critical:
        return _fail(args, mountpoint, "a warning threshold is above its critical one")
    try:
        status = _fetch(mountpoint, args.run_dir, args.timeout)
    except NoDaemon as err:
        return _fail(args, mountpoint, f"no daemon serves {mountpoint}: {err}")
    except (ControlError, ValueError) as err:
        return _fail(args, mountpoint, f"{mountpoint}: {err}")
    if args.container:
        status = select(status, args.container)
    if args.json:
        print(json.dumps(to_json(status), indent=2))
    elif args.prometheus:
        sys.stdout.write(render_prometheus(status))
    elif args.check:
        result = evaluate(status, thresholds)
        sys.stdout.write(render_check(status, result))
        return result.code
    else:
        sys.stdout.write(render_table(status))
    return 0
