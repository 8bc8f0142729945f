"""/proc/pressure views: the PSI parser and renderer, and which file a reader gets."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from containerfs.daemon.core import ContainerFS, Options
from containerfs.daemon.errors import ReadFailed
from containerfs.procfs.pressure import PressureLine, parse_pressure, render_pressure

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WEB_INIT = 2000  # web: throttled, its own figures (SCENARIO.md, generate.CG_PSI)
HOSTPID = 3000  # --pid=host container whose cgroup has cgroup.pressure 0
WEB_CPU = (
    "some avg10=38.20 avg60=35.11 avg300=30.02 total=61203312\n"
    "full avg10=21.05 avg60=19.80 avg300=17.33 total=33120078\n"
)


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        (
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",  # cpu before Linux 5.13: no full line
            [PressureLine("some", 0, 0, 0, 0)],
        ),
        (
            "some avg10=100.00 avg60=7.5 avg300=0.01 total=18446744073709551615\n"
            "full avg10=12.34 avg60=0.00 avg300=0.00 total=12\n",
            [PressureLine("some", 10000, 750, 1, 2**64 - 1), PressureLine("full", 1234, 0, 0, 12)],
        ),
    ],
)
def test_parse_pressure(text: str, lines: list[PressureLine]) -> None:
    assert parse_pressure(text) == lines


def test_render_is_the_kernels_format() -> None:
    assert render_pressure(parse_pressure(WEB_CPU)) == WEB_CPU
    assert render_pressure([PressureLine("some", 750, 5, 0, 3)]) == "some avg10=7.50 avg60=0.05 avg300=0.00 total=3\n"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",  # no some line
        "some avg10=0.00 avg60=0.00 total=0\n",  # a field missing
        "some avg10=x avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=-1.00 avg60=0.00 avg300=0.00 total=0\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=many\n",
    ],
)
def test_malformed_pressure_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_pressure(text)


def fs_over(root: Path) -> ContainerFS:
    return ContainerFS(Options(str(root / "proc"), str(root / "sys"), str(root / "cgroup")))


def host_file(host: str, resource: str) -> bytes:
    return (FIXTURES / host / "proc" / "pressure" / resource).read_bytes()


def test_a_v2_container_reads_its_own_cgroups_figures() -> None:
    fs = fs_over(FIXTURES / "v2")
    assert fs.render_path("proc/pressure/cpu", WEB_INIT).decode() == WEB_CPU
    for resource in ("cpu", "memory", "io"):
        assert fs.render_path(f"proc/pressure/{resource}", WEB_INIT) != host_file("v2", resource)


@pytest.mark.parametrize("host", ["v1", "hybrid"])
def test_v1_and_hybrid_containers_read_the_hosts_file(host: str) -> None:
    fs = fs_over(FIXTURES / host)
    for resource in ("cpu", "memory", "io"):
        assert fs.render_path(f"proc/pressure/{resource}", WEB_INIT) == host_file(host, resource)
    assert fs.stats.fallbacks == 0


def test_a_cgroup_with_psi_off_reads_the_hosts_file() -> None:
    fs = fs_over(FIXTURES / "v2")
    assert fs.render_path("proc/pressure/io", HOSTPID) == host_file("v2", "io")
    assert fs.stats.fallbacks == 0


def web_cgroup(root: Path) -> Path:
    line = (root / "proc" / str(WEB_INIT) / "cgroup").read_text().splitlines()[0]
    return root / "cgroup" / line.split(":", 2)[2].lstrip("/")


def test_eopnotsupp_reads_the_hosts_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels that keep the files with PSI disabled answer EOPNOTSUPP on read."""
    root = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", root, symlinks=True)
    fs = fs_over(root)
    pressure_file = str(web_cgroup(root) / "memory.pressure")
    read = fs.files.read

    def refusing(path: str) -> str:
        if path == pressure_file:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return read(path)

    monkeypatch.setattr(fs.files, "read", refusing)
    assert fs.render_path("proc/pressure/memory", WEB_INIT) == host_file("v2", "memory")
    assert fs.stats.fallbacks == 0

    def failing(path: str) -> str:
        if path == pressure_file:
            raise OSError(errno.EIO, "Input/output error")
        return read(path)

    monkeypatch.setattr(fs.files, "read", failing)
    # Other errors are not PSI being off: the reader gets an error, never the host's figures.
    with pytest.raises(ReadFailed):
        fs.render_path("proc/pressure/memory", WEB_INIT)
    assert fs.stats.fallbacks == 1


def test_a_malformed_cgroup_file_is_an_error_not_the_hosts_figures(tmp_path: Path) -> None:
    root = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", root, symlinks=True)
    (web_cgroup(root) / "cpu.pressure").write_text("some avg10=garbage\n")
    fs = fs_over(root)
    with pytest.raises(ReadFailed):
        fs.render_path("proc/pressure/cpu", WEB_INIT)
    assert fs.stats.fallbacks == 1
