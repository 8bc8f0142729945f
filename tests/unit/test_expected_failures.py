"""Expected failures (a vanished process or cgroup, an absent hierarchy, malformed kernel
text) are one explicit family; any other exception in a view is a bug the core counts."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import containerfs.procfs
from containerfs.cgroup import files
from containerfs.cgroup.reader import CgroupGone, NotMounted
from containerfs.daemon.core import ContainerFS, Options
from containerfs.daemon.errors import ReadFailed
from containerfs.host.errors import ParseError, ProcessGone, Unavailable
from containerfs.procfs.process import parse_proc_stat, parse_proc_status
from containerfs.procfs.uptime import parse_uptime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WEB_INIT = 2000


def parsers() -> list[Callable[..., Any]]:
    """Every public function of procfs and cgroup.files that reads kernel text."""
    modules = [files] + [
        importlib.import_module(f"containerfs.procfs.{m.name}")
        for m in pkgutil.iter_modules(containerfs.procfs.__path__)
    ]
    found: list[Callable[..., Any]] = []
    for module in modules:
        for name, func in inspect.getmembers(module, inspect.isfunction):
            if func.__module__ == module.__name__ and (name.startswith("parse_") or name.startswith("meminfo_")):
                found.append(func)
    return found


def test_every_parser_turns_malformed_text_into_parse_error() -> None:
    found = parsers()
    assert len(found) >= 15
    unmarked = [f"{f.__module__}.{f.__name__}" for f in found if not getattr(f, "parses_kernel_text", False)]
    assert unmarked == [], "decorate with containerfs.host.errors.parser"


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (parse_proc_stat, "not a stat line"),
        (parse_proc_stat, "1 (sh) S 0"),  # truncated: no field 22
        (parse_proc_status, "PPid:\t1\n"),  # no NSpid line
        (parse_uptime, ""),
        (files.parse_int, "garbage"),
        (files.parse_limit, "garbage"),
        (files.parse_cpu_list, "0-x"),
        (files.parse_ids, "12\nthirteen\n"),
    ],
)
def test_malformed_text_is_a_parse_error(parse: Callable[[str], object], text: str) -> None:
    with pytest.raises(ParseError):
        parse(text)


def test_the_family() -> None:
    for kind in (ProcessGone, ParseError, CgroupGone, NotMounted):
        assert issubclass(kind, Unavailable)
    # Callers that catch ValueError around a parse keep working.
    assert issubclass(ParseError, ValueError)
    for kind in (CgroupGone, NotMounted, ProcessGone):
        assert not issubclass(kind, LookupError)


@pytest.mark.parametrize(
    "bug", [KeyError("k"), IndexError("list index out of range"), ValueError("v"), LookupError("l"), TypeError("t")]
)
def test_a_bug_in_a_view_is_counted_whatever_its_type(monkeypatch: pytest.MonkeyPatch, bug: Exception) -> None:
    fs = ContainerFS(
        Options(str(FIXTURES / "v2" / "proc"), str(FIXTURES / "v2" / "sys"), str(FIXTURES / "v2" / "cgroup"))
    )

    def broken(paths: dict[str, str]) -> None:
        raise bug

    monkeypatch.setattr(fs.cgroups, "memory", broken)
    # A container's reader never gets the host's figures: the read fails (EIO).
    with pytest.raises(ReadFailed):
        fs.render_path("proc/meminfo", WEB_INIT)
    assert (fs.stats.fallbacks, fs.stats.errors) == (1, 1)


@pytest.mark.parametrize(
    "expected",
    [
        ProcessGone("p"),
        CgroupGone("c"),
        NotMounted("n"),
        ParseError("x"),
        FileNotFoundError(2, "f"),
        PermissionError(13, "p"),
    ],
)
def test_expected_failures_are_not_counted(monkeypatch: pytest.MonkeyPatch, expected: Exception) -> None:
    fs = ContainerFS(
        Options(str(FIXTURES / "v2" / "proc"), str(FIXTURES / "v2" / "sys"), str(FIXTURES / "v2" / "cgroup"))
    )

    def failing(paths: dict[str, str]) -> None:
        raise expected

    monkeypatch.setattr(fs.cgroups, "memory", failing)
    # A container's reader never gets the host's figures: resolved again, then the read fails (EIO).
    with pytest.raises(ReadFailed):
        fs.render_path("proc/meminfo", WEB_INIT)
    assert (fs.stats.fallbacks, fs.stats.errors) == (1, 0)
