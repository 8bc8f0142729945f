"""One logging set-up for the daemon, the hooks and show."""

from __future__ import annotations

import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import pytest

import containerfs.daemon.logsetup as logsetup
from containerfs.daemon.logsetup import configure_logging


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    target = logging.getLogger("containerfs.test-logsetup")
    yield target
    for handler in list(target.handlers):
        target.removeHandler(handler)
        handler.close()
    target.propagate = True


class SysLogHandler(logging.Handler):
    """Stands for the real one, which would connect to this host's /dev/log."""

    def __init__(self, address: str) -> None:
        super().__init__()


def kinds(target: logging.Logger) -> list[str]:
    return sorted(type(h).__name__ for h in target.handlers)


@pytest.mark.parametrize(
    ("stderr", "syslog", "log_file", "dev_log", "expected"),
    [
        ("%(message)s", None, False, True, ["StreamHandler"]),  # show, a foreground daemon
        (None, "%(message)s", False, True, ["SysLogHandler"]),  # a daemon in the background
        (None, "%(message)s", False, False, ["NullHandler"]),  # ... on a host without syslog
        ("%(message)s", "%(message)s", True, True, ["FileHandler", "StreamHandler"]),  # a hook with --log-file
        ("%(message)s", "%(message)s", False, True, ["StreamHandler", "SysLogHandler"]),  # a hook
    ],
)
def test_handlers(
    logger: logging.Logger,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stderr: str | None,
    syslog: str | None,
    log_file: bool,
    dev_log: bool,
    expected: list[str],
) -> None:
    monkeypatch.setattr(logsetup.os.path, "exists", lambda path: dev_log if path == "/dev/log" else True)
    monkeypatch.setattr(logging.handlers, "SysLogHandler", SysLogHandler)
    configure_logging(logging.INFO, stderr, syslog, str(tmp_path / "log") if log_file else None, logger)
    assert kinds(logger) == expected
    assert logger.level == logging.INFO and logger.propagate is False


def test_the_file_gets_the_lines_in_the_given_format(logger: logging.Logger, tmp_path: Path) -> None:
    configure_logging(logging.INFO, None, "hook[%(levelname)s]: %(message)s", str(tmp_path / "log"), logger)
    logger.info("views bound")
    logger.debug("not at this level")
    for handler in logger.handlers:
        handler.flush()
    assert (tmp_path / "log").read_text() == "hook[INFO]: views bound\n"
