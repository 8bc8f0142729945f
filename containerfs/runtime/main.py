"""containerfs-runtime: runc's command line; on create and run, the bundle gets containerfs first.

It adds containerfs's oci-hook (the views are bound before the container's first
instruction, also under Docker and containerd, which run no hooks.d) and a seccomp rule
that sends sysinfo(2) to the daemon's holder (see containerfs.sysinfo).  Then it execs
the real runtime with the command line unchanged.  What is not running is not added: a
container must start even when containerfs is down, with the host's values.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import platform
import shutil
import sys
from collections.abc import Mapping
from typing import Any

from containerfs.host.mounttable import FSTYPE, is_dead, mount_at
from containerfs.runtime.cmdline import EDITED_COMMANDS, parse_invocation
from containerfs.runtime.config import ConfigError, RuntimeConfig, load_config
from containerfs.runtime.spec import ARCHITECTURES, Plan, edit_spec, refusal
from containerfs.sysinfo.paths import holder_pid, sysinfo_paths

log = logging.getLogger("containerfs-runtime")


def _configure_logging() -> None:
    # The engines keep a runtime's stderr only when it fails: syslog keeps the reasons.
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    stderr.setFormatter(logging.Formatter("containerfs-runtime: %(message)s"))
    log.addHandler(stderr)
    if os.path.exists("/dev/log"):
        try:
            syslog = logging.handlers.SysLogHandler("/dev/log")
        except OSError:
            pass
        else:
            syslog.setFormatter(logging.Formatter("containerfs-runtime[%(process)d]: %(message)s"))
            log.addHandler(syslog)
    log.setLevel(logging.INFO)
    log.propagate = False


def containerfs_command(argv0: str) -> str | None:
    """The installed containerfs command: beside this script or its interpreter (one package,
    one bin directory; `python -m containerfs.runtime` has no script), else on PATH."""
    for directory in (os.path.dirname(os.path.abspath(argv0)), os.path.dirname(sys.executable)):
        candidate = os.path.join(directory, "containerfs")
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return shutil.which("containerfs")


def views_live(mountpoint: str) -> bool:
    mount = mount_at(mountpoint)
    return mount is not None and mount.fstype == FSTYPE and not is_dead(mountpoint)


def plan_for(config: RuntimeConfig, argv0: str) -> tuple[Plan, list[str]]:
    """What the running containerfs can serve, and why the rest is left out."""
    if not views_live(config.mountpoint):
        # Then no holder answers either: calls would get the host's figures at best, and a
        # holder about to exit (it keeps nothing without a daemon) would fail the start.
        return Plan(config.mountpoint, None, None), [f"no containerfs daemon serves {config.mountpoint}: nothing added"]
    notes = []
    hook_argv = None
    command = containerfs_command(argv0)
    if command is None:
        notes.append("no containerfs command found beside containerfs-runtime or on PATH: no views hook")
    else:
        hook_argv = [command, "oci-hook", "--mountpoint", config.mountpoint]
    paths = sysinfo_paths(config.mountpoint, config.run_dir)
    listener = None
    if holder_pid(paths) is not None and os.path.exists(paths.listener):
        listener = paths.listener
    else:
        notes.append(f"no sysinfo holder listens at {paths.listener}: sysinfo(2) gives the host's figures")
    architectures = tuple(ARCHITECTURES.get(platform.machine(), ()))
    return Plan(config.mountpoint, hook_argv, listener, architectures=architectures), notes


def _read_spec(path: str) -> dict[str, Any]:
    with open(path) as f:
        spec = json.load(f)
    if not isinstance(spec, dict):
        raise ValueError("not a JSON object")
    return spec


def edit_bundle(bundle: str, config: RuntimeConfig, argv0: str) -> list[str]:
    """Rewrite bundle/config.json (atomically, same mode) for what runs; what was left out, and why."""
    path = os.path.join(bundle, "config.json")
    spec = _read_spec(path)
    reason = refusal(spec, config.mountpoint)
    if reason:
        # What the user asked for: logged, not warned about.
        log.info("%s: nothing added: %s", bundle, reason)
        return []
    plan, notes = plan_for(config, argv0)
    edit = edit_spec(spec, plan)
    if edit.changed:
        tmp = path + ".containerfs.tmp"
        with open(tmp, "w") as f:
            json.dump(edit.spec, f)
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
    return notes + edit.notes


def prepare(argv: list[str], env: Mapping[str, str], argv0: str) -> RuntimeConfig:
    """Everything before the exec; only a broken configuration file stops the container."""
    config = load_config(env)
    invocation = parse_invocation(argv)
    if invocation.command not in EDITED_COMMANDS:
        return config
    bundle = invocation.bundle or os.getcwd()
    try:
        notes = edit_bundle(bundle, config, argv0)
    except Exception as err:  # whatever the bundle holds, the container must still start
        # The real runtime then reports a broken bundle in its own words.
        notes = [f"cannot edit {bundle}/config.json ({type(err).__name__}: {err}): running it unchanged"]
    for note in notes:
        log.warning("%s: %s", bundle, note)
    return config


def main() -> None:
    _configure_logging()
    argv = sys.argv[1:]
    try:
        config = prepare(argv, os.environ, sys.argv[0])
    except ConfigError as err:
        print(f"containerfs-runtime: {err}", file=sys.stderr)
        sys.exit(2)
    runtime = shutil.which(config.runtime)
    if runtime is None:
        print(f"containerfs-runtime: runtime {config.runtime!r} not found (CONTAINERFS_RUNTIME)", file=sys.stderr)
        sys.exit(127)
    if os.path.realpath(runtime) == os.path.realpath(sys.argv[0]):
        print(f"containerfs-runtime: CONTAINERFS_RUNTIME={config.runtime} is this wrapper itself", file=sys.stderr)
        sys.exit(2)
    os.execv(runtime, [runtime, *argv])
