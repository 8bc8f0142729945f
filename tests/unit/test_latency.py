"""The read-latency histogram: bucket bounds and quantiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from containerfs.daemon.core import ContainerFS, Options
from containerfs.daemon.latency import LatencyHistogram, bucket, quantile, upper_bound

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.mark.parametrize("ns", [0, 1, 7, 15, 16, 17, 18, 100, 1000, 65_535, 65_536, 150_000, 10**9, 2**63 - 1])
def test_a_value_lies_in_its_bucket_within_an_eighth(ns: int) -> None:
    index = bucket(ns)
    assert ns < upper_bound(index) <= ns + ns // 8 + 1
    assert index == 0 or upper_bound(index - 1) <= ns, "the bucket below must end at or below the value"


def test_buckets_are_contiguous_and_ordered() -> None:
    previous = -1
    for ns in range(0, 5000):
        index = bucket(ns)
        assert index in (previous, previous + 1)
        previous = index


@pytest.mark.parametrize(
    ("values_us", "q", "expected_us"),
    [
        ([], 0.5, None),
        ([100], 0.5, 100),
        ([100] * 99 + [10_000], 0.5, 100),
        ([100] * 99 + [10_000], 0.99, 100),  # the 99th of 100 values is still 100 us
        ([100] * 98 + [10_000] * 2, 0.99, 10_000),
        ([50, 100, 200, 400], 0.5, 100),
        ([50, 100, 200, 400], 1.0, 400),
    ],
)
def test_quantiles(values_us: list[int], q: float, expected_us: int | None) -> None:
    histogram = LatencyHistogram()
    for value in values_us:
        histogram.record(value * 1000)
    result = quantile(histogram.counts, q)
    if expected_us is None:
        assert result is None
    else:
        assert result is not None
        # the upper bound of the value's bucket: at most 1/8 above it
        assert expected_us / 1e6 < result <= expected_us * 9 / 8 / 1e6


def test_summary() -> None:
    histogram = LatencyHistogram()
    assert histogram.summary() == (0, 0.0, None, None)
    for value in (1000, 2000, 3000):
        histogram.record(value)
    summary = histogram.summary()
    assert summary.samples == 3 and summary.sum_seconds == pytest.approx(6e-6)
    assert summary.p50_seconds is not None and 2e-6 < summary.p50_seconds <= 2.25e-6


def test_the_core_times_each_read_that_renders() -> None:
    fs = ContainerFS(
        Options(str(FIXTURES / "v2" / "proc"), str(FIXTURES / "v2" / "sys"), str(FIXTURES / "v2" / "cgroup"))
    )
    handle = fs.open("/proc/meminfo", 2000)
    fs.read(handle, 7, 0, 2000)
    fs.read(handle, 7, 7, 2000)  # a later offset is a slice of the snapshot: not timed
    fs.read(fs.open("/proc/meminfo", 1100), 4096, 0, 1100)
    summary = fs.latency.summary()
    assert summary.samples == 2
    assert summary.p99_seconds is not None and 0 < summary.p99_seconds < 1
