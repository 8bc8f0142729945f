"""Table-driven tests of the cgroup control-file parsers."""

from __future__ import annotations

from fractions import Fraction

import pytest

from containerfs.cgroup import files


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max\n", None),
        ("9223372036854771712\n", None),  # v1 "unlimited" on 4 KiB pages
        ("9223372036854710272\n", None),  # ... and on 64 KiB pages
        ("536870912\n", 536870912),
        ("0\n", 0),
    ],
)
def test_parse_limit(text: str, expected: int | None) -> None:
    assert files.parse_limit(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("anon 10\nfile 20\n", {"anon": 10, "file": 20}),
        ("", {}),
        # A malformed line is skipped, the rest kept.
        ("anon 10\nbroken\nfile 20\n", {"anon": 10, "file": 20}),
        ("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}),
        ("low -1\n", {"low": -1}),
    ],
)
def test_parse_flat_keyed(text: str, expected: dict[str, int]) -> None:
    assert files.parse_flat_keyed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0-3\n", [0, 1, 2, 3]), ("0,2,4-5", [0, 2, 4, 5]), ("\n", []), ("7", [7])],
)
def test_parse_cpu_list(text: str, expected: list[int]) -> None:
    assert files.parse_cpu_list(text) == expected


@pytest.mark.parametrize(("count", "expected"), [(1, "0"), (2, "0-1"), (96, "0-95")])
def test_format_cpu_range(count: int, expected: str) -> None:
    assert files.format_cpu_range(count) == expected


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [("-1", "100000", None), ("150000", "100000", Fraction(3, 2)), ("50000\n", "100000\n", Fraction(1, 2))],
)
def test_parse_v1_quota(quota: str, period: str, expected: Fraction | None) -> None:
    assert files.parse_v1_quota(quota, period) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("max 100000\n", None), ("150000 100000\n", Fraction(3, 2)), ("200000 50000", Fraction(4)), ("", None)],
)
def test_parse_cpu_max(text: str, expected: Fraction | None) -> None:
    assert files.parse_cpu_max(text) == expected


def test_parse_usage_all() -> None:
    text = "cpu user system\n0 100 50\n1 200 0\n"
    assert files.parse_usage_all(text) == {0: (100, 50), 1: (200, 0)}


def test_parse_blkio_skips_grand_total() -> None:
    text = "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\n8:16 Read 1\nTotal 12289\n"
    assert files.parse_blkio(text) == {(8, 0): {"Read": 4096, "Write": 8192, "Total": 12288}, (8, 16): {"Read": 1}}


def test_parse_io_stat() -> None:
    text = "8:0 rbytes=1024 wbytes=2048 rios=1 wios=2 dbytes=0 dios=0\n253:1 rbytes=5 wbytes=0 rios=1 wios=0\n"
    assert files.parse_io_stat(text) == {
        (8, 0): {"rbytes": 1024, "wbytes": 2048, "rios": 1, "wios": 2, "dbytes": 0, "dios": 0},
        (253, 1): {"rbytes": 5, "wbytes": 0, "rios": 1, "wios": 0},
    }
