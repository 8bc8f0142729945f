"""containerfs command line: mount, umount, show, status."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from containerfs import __version__
from containerfs.core import ContainerFS, Options
from containerfs.errors import NotFound
from containerfs.status import cli as status_cli

DEFAULT_MOUNTPOINT = "/var/lib/containerfs"


def _add_roots(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--proc-root", default="/proc", help="where /proc is (default: %(default)s)")
    parser.add_argument("--sys-root", default="/sys", help="where /sys is (default: %(default)s)")
    parser.add_argument(
        "--cgroup-root", default="/sys/fs/cgroup", help="where cgroups are mounted (default: %(default)s)"
    )
    parser.add_argument(
        "--no-cpu-quota", action="store_true", help="count CPUs from the cpuset only, ignoring the CFS quota"
    )


def _options(args: argparse.Namespace) -> Options:
    roots = (os.path.abspath(args.proc_root), os.path.abspath(args.sys_root), os.path.abspath(args.cgroup_root))
    return Options(*roots, use_quota=not args.no_cpu_quota)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="containerfs", description="Per-container /proc views over FUSE.")
    parser.add_argument("--version", action="version", version=f"containerfs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    mount = commands.add_parser("mount", help="mount and serve the views")
    mount.add_argument("mountpoint", nargs="?", default=DEFAULT_MOUNTPOINT)
    mount.add_argument("-f", "--foreground", action="store_true", help="stay in the foreground, log to stderr")
    mount.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    _add_roots(mount)

    umount = commands.add_parser("umount", help="unmount the views")
    umount.add_argument("mountpoint", nargs="?", default=DEFAULT_MOUNTPOINT)

    show = commands.add_parser("show", help="print what process PID reads at PATH, without FUSE")
    show.add_argument("pid", type=int)
    show.add_argument("path", help="e.g. proc/meminfo or sys/devices/system/cpu/online")
    _add_roots(show)

    status = commands.add_parser("status", help="the daemon and every container: usage, limits, alerts, metrics")
    status_cli.add_arguments(status, DEFAULT_MOUNTPOINT)
    return parser


def _show(args: argparse.Namespace) -> int:
    try:
        fs = ContainerFS(_options(args))
    except (OSError, ValueError) as err:
        print(f"containerfs: cannot read the host: {err}", file=sys.stderr)
        return 2
    try:
        content = fs.render_path(args.path, args.pid)
    except NotFound:
        print(f"containerfs: no view at {args.path!r}; views: {', '.join(sorted(_view_paths()))}", file=sys.stderr)
        return 2
    except IsADirectoryError:
        print(f"containerfs: {args.path!r} is a directory", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(content)
    return 0


def _view_paths() -> list[str]:
    from containerfs.views.registry import VIEWS

    return list(VIEWS)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "show":
        logging.basicConfig(level=logging.WARNING, format="containerfs: %(message)s")
        return _show(args)
    if args.command == "status":
        return status_cli.run(args)
    # The FUSE binding is imported only by the commands that need it.
    from containerfs import mount

    if args.command == "mount":
        return mount.mount(args.mountpoint, _options(args), args.foreground, args.log_level)
    return mount.umount(args.mountpoint)
