"""containerfs command line: mount, umount, inject, oci-hook, lxc-hook, docker-args, show, status."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING

from containerfs import __version__
from containerfs.host import roots
from containerfs.inject.policy import DEFAULT_EXCLUDE, WatchPolicy
from containerfs.status.options import add_arguments as add_status_arguments

if TYPE_CHECKING:
    from containerfs.daemon.core import Options

DEFAULT_MOUNTPOINT = "/var/lib/containerfs"
DEFAULT_RUN_DIR = "/run/containerfs"


def _add_roots(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--proc-root", default=roots.PROC_ROOT, help="where /proc is (default: %(default)s)")
    parser.add_argument("--sys-root", default=roots.SYS_ROOT, help="where /sys is (default: %(default)s)")
    parser.add_argument(
        "--cgroup-root", default=roots.CGROUP_ROOT, help="where cgroups are mounted (default: %(default)s)"
    )
    parser.add_argument(
        "--no-cpu-quota", action="store_true", help="count CPUs from the cpuset only, ignoring the CFS quota"
    )


def _options(args: argparse.Namespace) -> Options:
    # The hooks run at every container start: they do not pay for importing the core.
    from containerfs.daemon.core import Options

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
    mount.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="root-only runtime state (default: %(default)s)")
    watch = mount.add_argument_group("automatic injection")
    watch.add_argument("--watch", action="store_true", help="inject the views into every new and running container")
    watch.add_argument(
        "--watch-include",
        action="append",
        metavar="GLOB",
        help="only containers whose cgroup path matches (repeatable; default: all)",
    )
    watch.add_argument(
        "--watch-exclude",
        action="append",
        metavar="GLOB",
        help=f"skip containers whose cgroup path matches (repeatable; default: {' '.join(DEFAULT_EXCLUDE)})",
    )
    watch.add_argument("--watch-interval", type=float, default=1.0, help="seconds between scans (default: 1)")
    _add_roots(mount)

    umount = commands.add_parser(
        "umount", help="stop the daemon cleanly (views out of every container) and wait until it has exited"
    )
    umount.add_argument("mountpoint", nargs="?", default=DEFAULT_MOUNTPOINT)
    umount.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="the daemon's --run-dir (default: %(default)s)")
    umount.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for the daemon to exit (default: %(default)s)"
    )

    _add_injection_commands(commands)

    show = commands.add_parser("show", help="print what process PID reads at PATH, without FUSE")
    show.add_argument("pid", type=int)
    show.add_argument("path", help="e.g. proc/meminfo or sys/devices/system/cpu/online")
    _add_roots(show)

    status = commands.add_parser("status", help="the daemon and every container: usage, limits, alerts, metrics")
    add_status_arguments(status, DEFAULT_MOUNTPOINT, DEFAULT_RUN_DIR)
    return parser


def _watch_policy(args: argparse.Namespace) -> WatchPolicy | None:
    if not args.watch:
        return None
    return WatchPolicy(
        tuple(args.watch_include or ("*",)), tuple(args.watch_exclude or DEFAULT_EXCLUDE), args.watch_interval
    )


def _add_injection_commands(commands: argparse._SubParsersAction) -> None:
    inject = commands.add_parser("inject", help="bind the views into running containers")
    inject.add_argument("pids", metavar="PID", nargs="*", type=int, help="any process of the container")
    inject.add_argument("--all", action="store_true", help="every container (own pid and mount namespaces)")
    _add_mountpoint_option(inject)
    inject.add_argument("--proc-root", default=roots.PROC_ROOT, help=argparse.SUPPRESS)

    for name, what in (("oci-hook", "OCI hook: the container state JSON on stdin"), ("lxc-hook", "lxc.hook.mount")):
        hook = commands.add_parser(name, help=f"{what}; binds the views before the container starts")
        _add_mountpoint_option(hook)
        hook.add_argument(
            "--require-daemon", action="store_true", help="fail the container's start when no daemon serves the views"
        )
        hook.add_argument("--log-file", help="also log here (default: syslog when /dev/log exists)")
        hook.add_argument("--proc-root", default=roots.PROC_ROOT, help=argparse.SUPPRESS)
        # LXC passes the container name, section and hook type; runtimes pass nothing.
        hook.add_argument("runtime_args", nargs="*", help=argparse.SUPPRESS)

    docker = commands.add_parser("docker-args", help="print the -v flags that give a `docker run` the views")
    _add_mountpoint_option(docker)


def _add_mountpoint_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--mountpoint", default=DEFAULT_MOUNTPOINT, help="the daemon's mountpoint (default: %(default)s)"
    )


def _injection(args: argparse.Namespace) -> int:
    from containerfs.inject import commands

    if args.command == "inject":
        if not args.pids and not args.all:
            print("containerfs: inject needs PID arguments or --all", file=sys.stderr)
            return 2
        return commands.inject(args.mountpoint, args.pids, args.all, args.proc_root)
    if args.command == "oci-hook":
        return commands.oci_hook(args.mountpoint, args.require_daemon, args.proc_root, sys.stdin, args.log_file)
    if args.command == "lxc-hook":
        return commands.lxc_hook(args.mountpoint, args.require_daemon, args.proc_root, args.log_file)
    try:
        flags = commands.docker_args(args.mountpoint)
    except commands.NotServing as err:
        print(f"containerfs: {err}", file=sys.stderr)
        return 1
    print(flags)
    return 0


def _show(args: argparse.Namespace) -> int:
    from containerfs.daemon.core import ContainerFS
    from containerfs.daemon.errors import NotFound

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
        from containerfs.daemon.logsetup import configure_logging

        configure_logging(logging.WARNING, "containerfs: %(message)s")
        return _show(args)
    if args.command in ("inject", "oci-hook", "lxc-hook", "docker-args"):
        return _injection(args)
    if args.command == "status":
        from containerfs.status import cli as status_cli

        return status_cli.run(args)
    # The FUSE binding is imported only by the commands that need it.
    from containerfs.daemon import mount

    if args.command == "mount":
        return mount.mount(
            args.mountpoint, _options(args), args.foreground, args.log_level, args.run_dir, _watch_policy(args)
        )
    return mount.umount(args.mountpoint, args.run_dir, args.timeout)
