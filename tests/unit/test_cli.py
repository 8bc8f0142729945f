"""The `containerfs show` command as an operator runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
V2 = REPO / "tests" / "fixtures" / "v2"
ROOTS = ["--proc-root", str(V2 / "proc"), "--sys-root", str(V2 / "sys"), "--cgroup-root", str(V2 / "cgroup")]


def show(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "containerfs", "show", *ROOTS, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_show_prints_the_container_view() -> None:
    result = show("2000", "proc/meminfo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MemTotal:         524288 kB\n")
    assert show("2000", "/sys/devices/system/cpu/online").stdout == "0-1\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["2000", "proc/nonexistent"], "no view at 'proc/nonexistent'"),
        (["2000", "proc"], "is a directory"),
        (["notapid", "proc/meminfo"], "invalid int value"),
    ],
)
def test_show_errors_are_one_clear_line(args: list[str], message: str) -> None:
    result = show(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_show_for_a_vanished_pid_prints_the_host_file_and_says_why() -> None:
    result = show("424242", "proc/meminfo")
    assert result.returncode == 0
    assert result.stdout == (V2 / "proc" / "meminfo").read_text()
    assert "serving the host's file" in result.stderr


def test_show_with_a_missing_cgroup_root_is_a_clear_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "containerfs", "show", "--cgroup-root", "/nonexistent", "1", "proc/meminfo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "/nonexistent" in result.stderr
