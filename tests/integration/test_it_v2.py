"""cgroup v2 through the real daemon and real tools, on a fixture host.

This machine's cgroup v2 tree has no controllers, so the v2 host is a fixture
(tests/fixtures/v2): the daemon runs with --proc-root/--sys-root/--cgroup-root on a copy
of it, and the reading tool's pid is added to that copy as a process of the "web"
container (512 MiB, 256 MiB swap, 2 CPUs of quota; SCENARIO.md).  The tool runs in its
own mount namespace with the daemon's files bound over /proc, so `free` and `top` read
the v2 view through FUSE exactly as inside a container.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v2"
WEB_INIT = 2000
MiB = 1024 * 1024

pytestmark = pytest.mark.integration


@pytest.fixture
def v2_host(tmp_path):
    host = tmp_path / "v2"
    shutil.copytree(FIXTURE, host, symlinks=True)
    return host


@pytest.fixture
def v2_daemon(start_containerfs, v2_host):
    return start_containerfs(
        "--proc-root",
        str(v2_host / "proc"),
        "--sys-root",
        str(v2_host / "sys"),
        "--cgroup-root",
        str(v2_host / "cgroup"),
    )


def run_as_web_process(v2_host, mountpoint, command):
    """Run command in a private mount namespace with the views bound over /proc, as a
    process the fixture host places in the web container."""
    binds = " && ".join(
        f"mount --bind {mountpoint}/proc/{name} /proc/{name}"
        for name in ("meminfo", "stat", "cpuinfo", "uptime", "vmstat")
    )
    script = f'{binds} && echo $$ && read go && exec "$@"'
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(proc.stdout.readline())
        # The fixture now has this pid as a copy of the web container's init.
        shutil.copytree(v2_host / "proc" / str(WEB_INIT), v2_host / "proc" / str(pid), symlinks=True)
        out, err = proc.communicate("go\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    return out


def test_free_shows_the_v2_containers_memory_and_swap(v2_daemon, v2_host):
    out = run_as_web_process(v2_host, v2_daemon.mountpoint, ["free", "-b"])
    mem = next(line.split() for line in out.splitlines() if line.startswith("Mem:"))
    swap = next(line.split() for line in out.splitlines() if line.startswith("Swap:"))
    assert int(mem[1]) == 512 * MiB, out
    # memory.current 300 MiB: used + buff/cache add up to it, free is the rest
    assert int(mem[3]) == 212 * MiB, out
    assert (int(swap[1]), int(swap[2])) == (256 * MiB, 64 * MiB), out


def test_top_shows_the_v2_containers_memory_and_swap(v2_daemon, v2_host):
    out = run_as_web_process(v2_host, v2_daemon.mountpoint, ["top", "-bn1"])
    assert "MiB Mem :    512.0 total,    212.0 free" in out, out
    assert "MiB Swap:    256.0 total,    192.0 free,     64.0 used" in out, out
    assert out.count("%Cpu") == 1, out


def test_cpuinfo_and_uptime_follow_the_v2_container(v2_daemon, v2_host):
    # One process each: only the pid added to the fixture belongs to the container.
    count = run_as_web_process(v2_host, v2_daemon.mountpoint, ["grep", "-c", "^processor", "/proc/cpuinfo"])
    assert count == "2\n"
    uptime = run_as_web_process(v2_host, v2_daemon.mountpoint, ["cat", "/proc/uptime"])
    # the copied init started at the fixture's 350000.00 s of a 354017.28 s host uptime
    assert uptime.split()[0] == "4017.28", uptime


def test_vmstat_counters_are_the_v2_containers(v2_daemon, v2_host):
    """vmstat -s prints /proc/vmstat's and /proc/stat's counters (SCENARIO.md, issue 11)."""
    out = run_as_web_process(v2_host, v2_daemon.mountpoint, ["vmstat", "-s"])
    figures = {line.split(None, 1)[1].strip(): int(line.split()[0]) for line in out.splitlines() if line.strip()}
    # io.stat 8:0: 100 MiB read, 50 MiB written, in KiB; memory.stat pswpin/pswpout
    assert figures["K paged in"] == 102400 and figures["K paged out"] == 51200, out
    assert figures["pages swapped in"] == 8192 and figures["pages swapped out"] == 16384, out
    # no per-cgroup counter: 0, not the host's 418802 forks and 1183441029 switches
    assert figures["forks"] == figures["interrupts"] == figures["CPU context switches"] == 0, out
    assert figures["non-nice user cpu ticks"] == 104118 and figures["IO-wait cpu ticks"] == 0, out
