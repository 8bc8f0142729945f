"""Every view for every fixture process, against reviewed golden outputs.

Regenerate after an intended change with CONTAINERFS_UPDATE_GOLDEN=1, then review the
diff of tests/golden/ like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from containerfs.daemon.core import ContainerFS, Options
from containerfs.host.files import HostFiles
from containerfs.host.fsread import FileCache
from containerfs.views.registry import VIEWS, device_views

TESTS = Path(__file__).resolve().parent.parent
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"
HOSTS = ("v1", "v2", "hybrid")
UPDATE = os.environ.get("CONTAINERFS_UPDATE_GOLDEN") == "1"


def readers(host: str) -> list[int]:
    """Every process of the fixture host except the daemon itself."""
    proc = FIXTURES / host / "proc"
    daemon = int(os.readlink(proc / "self"))
    # Processes only: thread ids have a status whose Tgid names another pid.
    pids = []
    for entry in proc.iterdir():
        if entry.name.isdigit() and int(entry.name) != daemon:
            tgid = next(
                line.split()[1] for line in (entry / "status").read_text().splitlines() if line.startswith("Tgid")
            )
            if tgid == entry.name:
                pids.append(int(entry.name))
    return sorted(pids)


def paths(host: str) -> list[str]:
    """The fixed views, one sysfs stat per block device, and files passed through the cpu directory."""
    base = FIXTURES / host
    devices = device_views(HostFiles(str(base / "proc"), str(base / "sys"), FileCache()))
    passed = [f"sys/devices/system/cpu/cpu{n}/topology/core_id" for n in (0, 1)]
    return [*VIEWS, *sorted(devices), *passed]


CASES = [(host, pid, path) for host in HOSTS for pid in readers(host) for path in paths(host)]


@pytest.fixture(scope="module")
def filesystems() -> dict[str, ContainerFS]:
    return {
        host: ContainerFS(
            Options(str(FIXTURES / host / "proc"), str(FIXTURES / host / "sys"), str(FIXTURES / host / "cgroup"))
        )
        for host in HOSTS
    }


@pytest.mark.parametrize(("host", "pid", "path"), CASES)
def test_golden(filesystems: dict[str, ContainerFS], host: str, pid: int, path: str) -> None:
    fs = filesystems[host]
    content = fs.render_path(path, pid)
    golden = GOLDEN / host / str(pid) / path.replace("/", "_")
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(content)
    assert content == golden.read_bytes()
    assert fs.stats.fallbacks == 0, "a fixture process fell back to the host's file"
