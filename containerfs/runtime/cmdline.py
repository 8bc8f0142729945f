"""Reading runc's command line (also crun's): the command and the bundle directory."""

from __future__ import annotations

from typing import NamedTuple

# Global options that take a value (runc and crun); every other option is a flag.
_GLOBAL_VALUES = {"log", "log-format", "root", "criu", "rootless", "cgroup-manager"}
# create/run options that take a value.
_COMMAND_VALUES = {"bundle", "b", "console-socket", "pid-file", "preserve-fds", "keep-fds"}
EDITED_COMMANDS = ("create", "run")


class Invocation(NamedTuple):
    command: str | None  # None: no command (--version, --help)
    bundle: str | None  # create/run only: --bundle/-b, None for the default (the working directory)


def _option(arg: str) -> tuple[str, str | None] | None:
    """("bundle", "x") for --bundle=x, ("b", None) for -b; None for a positional argument."""
    if not arg.startswith("-") or arg in ("-", "--"):
        return None
    name, sep, value = arg.lstrip("-").partition("=")
    return name, (value if sep else None)


def parse_invocation(argv: list[str]) -> Invocation:
    """argv without the program name, as runc's urfave/cli reads it (-x and --x alike)."""
    i = 0
    while i < len(argv):
        opt = _option(argv[i])
        if opt is None:
            break
        name, value = opt
        i += 2 if name in _GLOBAL_VALUES and value is None else 1
    if i >= len(argv) or argv[i] == "--":
        return Invocation(None, None)
    command = argv[i]
    bundle = None
    if command in EDITED_COMMANDS:
        rest = argv[i + 1 :]
        j = 0
        while j < len(rest) and rest[j] != "--":
            opt = _option(rest[j])
            if opt is None:
                j += 1
                continue
            name, value = opt
            if name in _COMMAND_VALUES and value is None:
                value = rest[j + 1] if j + 1 < len(rest) else None
                j += 1
            if name in ("bundle", "b"):
                bundle = value
            j += 1
    return Invocation(command, bundle)
