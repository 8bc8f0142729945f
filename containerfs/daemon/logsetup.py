"""Logging for every command in one place: the daemon, the hooks and `show`.

Light on purpose: the OCI hook runs at every container start and imports it.
"""

from __future__ import annotations

import logging
import os
import sys


def configure_logging(
    level: int | str,
    stderr_format: str | None,
    syslog_format: str | None = None,
    log_file: str | None = None,
    logger: logging.Logger | None = None,
) -> None:
    """Log at level to stderr (when stderr_format is given) and to log_file, else to syslog
    (when syslog_format is given and /dev/log exists).  logger defaults to the root logger;
    any other keeps its lines to itself."""
    target = logger if logger is not None else logging.getLogger()
    handlers: list[logging.Handler] = []
    if stderr_format is not None:
        handlers.append(_formatted(logging.StreamHandler(sys.stderr), stderr_format))
    file_format = syslog_format or stderr_format
    if log_file and file_format is not None:
        handlers.append(_formatted(logging.FileHandler(log_file), file_format))
    elif syslog_format is not None and os.path.exists("/dev/log"):
        from logging.handlers import SysLogHandler  # here: a hook without syslog does not pay for it

        handlers.append(_formatted(SysLogHandler("/dev/log"), syslog_format))
    for handler in handlers or [logging.NullHandler()]:
        target.addHandler(handler)
    target.setLevel(level)
    if logger is not None:
        target.propagate = False


def _formatted(handler: logging.Handler, fmt: str) -> logging.Handler:
    handler.setFormatter(logging.Formatter(fmt))
    return handler
