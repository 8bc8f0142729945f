"""`containerfs status` against the real daemon and runc containers with known limits."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cfs_harness import CONTAINER_PYTHON, REPO_ROOT, VIEW_FILES, scaled

from containerfs.inject.attach import served_views

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


@pytest.fixture
def run_dir():
    """A private run directory (control sockets) for the daemons of one test.

    Short, under /tmp: a socket address holds 107 bytes and pytest's tmp_path is long.
    """
    parent = Path(tempfile.mkdtemp(prefix="cfs-run-", dir="/tmp"))
    try:
        yield parent / "run"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def start(start_containerfs, run_dir):
    """start_containerfs with the test's run directory; the daemon remembers it for status()."""

    def start_daemon(mountpoint=None):
        daemon = start_containerfs("--run-dir", str(run_dir), mountpoint=mountpoint)
        daemon.run_dir = run_dir
        return daemon

    return start_daemon


def status(daemon, *args, user=()):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    argv = [*user, sys.executable, "-m", "containerfs", "status", "--mountpoint", str(daemon.mountpoint)]
    argv += ["--run-dir", str(daemon.run_dir), *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=scaled(60), cwd="/", env=env)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def status_json(daemon):
    result = status(daemon, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def row_of(data, container):
    rows = [row for row in data["containers"] if row["cgroup"] == container.cgroup_path]
    assert len(rows) == 1, (container.cgroup_path, [row["cgroup"] for row in data["containers"]])
    return rows[0]


def check(daemon, container, *args):
    result = status(daemon, "--check", "--container", container.cgroup_path, *args)
    assert result.stdout.startswith("CONTAINERFS "), result.stdout + result.stderr
    return result.returncode, result.stdout


def wait_for(predicate, what, timeout=30.0):
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_names_containers_with_their_limits(start, runc_container):
    daemon = start()
    alpha = runc_container(
        name="alpha",
        memory=64 * MiB,
        cpu_quota=50000,
        cpus="0",
        pids_limit=50,
        views_from=daemon.mountpoint,
    )
    beta = runc_container(name="beta", memory=128 * MiB, cpus="0-1")
    rc, out, err = alpha.exec("cat", "/proc/meminfo")  # alpha reads a view: its load is tracked
    assert rc == 0 and out.startswith("MemTotal:          65536 kB"), out + err

    table = status(daemon)
    assert table.returncode == 0, table.stderr
    assert re.search(r"^alpha +runc +\S+/64M ", table.stdout, re.M), table.stdout
    assert re.search(r"^beta +runc +\S+/128M ", table.stdout, re.M), table.stdout
    assert f"pid {daemon.proc.pid}, serving {daemon.mountpoint}" in table.stdout

    data = status_json(daemon)
    d = data["daemon"]
    assert (d["pid"], d["mountpoint"], d["errors"]) == (daemon.proc.pid, str(daemon.mountpoint), 0)
    assert d["cgroup_layout"] in ("v1", "v2", "hybrid") and d["libfuse"].startswith("3.")
    assert d["reads"]["container"] >= 1 and d["latency"]["samples"] >= 1
    assert 0 < d["latency"]["p50_seconds"] <= d["latency"]["p99_seconds"] < 5

    a, b = row_of(data, alpha), row_of(data, beta)
    assert (a["name"], a["kind"], a["init_pid"]) == ("alpha", "runc", alpha.pid)
    assert a["memory"]["limit"] == 64 * MiB and 0 < a["memory"]["working_set"] <= a["memory"]["usage"] < 64 * MiB
    assert (a["cpu"]["visible"], a["cpu"]["quota"]) == (1, 0.5)
    assert a["pids"]["limit"] == 50 and 1 <= a["pids"]["current"] < 50
    assert a["oom"] == {"kills": 0, "last_kill_age_seconds": None}
    # live: the 8 files views_from binds; total: what injection would bind here (the proc
    # views, the cpu directory, one stat file per block device of this host)
    total = len(served_views(str(daemon.mountpoint)))
    assert a["views"] == {"live": 8, "stale": 0, "total": total}
    assert a["load"] is not None and 0 <= a["uptime_seconds"] < 300
    assert b["memory"]["limit"] == 128 * MiB and (b["cpu"]["visible"], b["cpu"]["quota"]) == (2, None)
    assert b["pids"]["limit"] is None
    assert b["views"] == {"live": 0, "stale": 0, "total": total} and b["load"] is None

    metrics = status(daemon, "--prometheus", "--container", alpha.cgroup_path)
    assert metrics.returncode == 0
    assert re.search(r'^containerfs_container_memory_limit_bytes\{name="alpha",.*\} 67108864$', metrics.stdout, re.M)
    assert re.search(r'^containerfs_container_pids_limit\{name="alpha",.*\} 50$', metrics.stdout, re.M)


FILL = r"""
import sys, time
size = int(sys.argv[1]) * 1024 * 1024
block = bytearray(size)
block[::4096] = b"\x01" * len(range(0, size, 4096))  # touch every page
open("/shared/filled", "w").write("yes")
time.sleep(3600)
"""


def test_check_fires_when_a_container_nears_its_limits(start, runc_container):
    daemon = start()
    box = runc_container(name="filler", memory=256 * MiB, pids_limit=40)
    assert check(daemon, box)[0] == 0

    # 150 MiB of anonymous memory: about 60% of the limit with the interpreter
    box.exec_detached(CONTAINER_PYTHON, "-c", FILL, "150")
    wait_for(lambda: (box.shared / "filled").exists(), "the container to fill its memory")
    working_set = row_of(status_json(daemon), box)["memory"]["working_set"]
    assert 150 * MiB <= working_set < 230 * MiB
    code, out = check(daemon, box, "--memory-warning", "50", "--memory-critical", "90")
    assert code == 1 and "WARNING - filler: memory" in out, out
    code, out = check(daemon, box, "--memory-warning", "50", "--memory-critical", "55")
    assert code == 2 and "CRITICAL - filler: memory" in out, out

    # 35 of 40 pids: the init, python, a shell and 32 sleeps
    box.exec_detached("/bin/sh", "-c", "for i in $(seq 32); do sleep 1000 & done; wait")
    wait_for(lambda: row_of(status_json(daemon), box)["pids"]["current"] >= 35, "35 pids")
    code, out = check(daemon, box)
    assert code == 1 and "WARNING - filler: 35 of 40 pids (88%)" in out, out
    code, out = check(daemon, box, "--pids-critical", "85")
    assert code == 2 and "filler: 35 of 40 pids" in out, out


def test_oom_kill_counter_rises_after_a_real_oom_kill(start, runc_container):
    daemon = start()
    small = runc_container(name="small", memory=32 * MiB, memory_swap=32 * MiB)
    assert row_of(status_json(daemon), small)["oom"]["kills"] == 0
    assert check(daemon, small)[0] == 0

    # Allocating 128 MiB in a 32 MiB container: the kernel's OOM killer ends it.
    rc, out, err = small.exec(CONTAINER_PYTHON, "-c", "b = bytearray(128 * 1024 * 1024); b[::4096] = b'1' * 32768")
    assert rc in (137, -9), (rc, out, err)

    row = row_of(status_json(daemon), small)
    assert row["oom"]["kills"] >= 1
    assert 0 <= row["oom"]["last_kill_age_seconds"] < 60
    code, out = check(daemon, small)
    assert code == 2 and "CRITICAL - small: OOM kill" in out, out
    # Outside a short window the kill is history.
    time.sleep(1.5)
    assert check(daemon, small, "--window", "1")[0] == 0


def test_views_of_a_killed_daemon_are_stale_until_the_next_one_heals_them(start, runc_container, tmp_path):
    mountpoint = tmp_path / "views"
    first = start(mountpoint=mountpoint)
    box = runc_container(name="viewer", views_from=mountpoint)
    total = len(served_views(str(mountpoint)))
    assert row_of(status_json(first), box)["views"] == {"live": 8, "stale": 0, "total": total}
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=scaled(10))
    second = start(mountpoint=mountpoint)
    # The new daemon replaces the dead views in the background: each view is stale, then live.
    seen = []

    def healed():
        views = row_of(status_json(second), box)["views"]
        seen.append(views)
        return views == {"live": 8, "stale": 0, "total": total}

    wait_for(healed, "the new daemon to heal the views")
    assert all(v["live"] + v["stale"] == len(VIEW_FILES) for v in seen), seen


def test_no_daemon_and_a_killed_daemon(start, run_dir):
    daemon = start()
    sockets = list(run_dir.glob("*.sock"))  # run_dir/sysinfo holds the sysinfo(2) sockets
    assert len(sockets) == 1 and oct(sockets[0].stat().st_mode & 0o777) == "0o600"
    assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
    assert status(daemon).returncode == 0

    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(timeout=scaled(10))
    assert sockets[0].exists(), "a killed daemon cannot remove its socket"
    result = status(daemon)
    assert result.returncode == 1
    assert result.stderr.startswith(f"containerfs: no daemon serves {daemon.mountpoint}: nothing listens on")
    assert len(result.stderr.splitlines()) == 1
    result = status(daemon, "--check")
    assert result.returncode == 3 and result.stdout.startswith("CONTAINERFS UNKNOWN - no daemon serves")

    # A new daemon on the same mountpoint takes the place of the stale socket; a clean stop removes it.
    again = start(mountpoint=daemon.mountpoint)
    assert status(again).returncode == 0
    again.stop()
    # Only the daemon's pid file stays: its lock (unlinking a locked file would race the next daemon).
    assert [p.name for p in run_dir.iterdir() if p.suffix != ".pid"] == []
    assert status(again).returncode == 1


IN_CONTAINER_CLIENT = r"""
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"request": "status"}\n')
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode())
"""


def test_only_root_on_the_host_gets_an_answer(start, run_dir, runc_container):
    daemon = start()
    (sock,) = run_dir.glob("*.sock")

    result = status(daemon, user=NOBODY)
    assert result.returncode == 1 and "Permission denied (status needs root)" in result.stderr, result.stderr

    # With the file permissions opened up, the daemon's own peer check still refuses.
    run_dir.parent.chmod(0o755)
    run_dir.chmod(0o755)
    sock.chmod(0o666)
    result = status(daemon, user=NOBODY)
    assert result.returncode == 1 and "the daemon refused: permission denied: peer pid" in result.stderr, result.stderr
    assert "runs as uid 65534" in result.stderr

    # Root inside a container that was handed the socket: not in the host's pid namespace.
    box = runc_container(name="snoop", extra_mounts=[(run_dir, "/run/cfs")])
    rc, out, err = box.exec(CONTAINER_PYTHON, "-c", IN_CONTAINER_CLIENT, f"/run/cfs/{sock.name}")
    assert rc == 0, err
    answer = json.loads(out)
    assert answer["ok"] is False and "not in the host's pid namespace" in answer["error"]
    assert "containers" not in out

    assert daemon.alive() and status(daemon).returncode == 0


def test_bad_clients_do_not_hurt_the_daemon(start, run_dir):
    daemon = start()
    (sock,) = run_dir.glob("*.sock")
    for payload in (b"garbage\n", b'{"request": "stat', b"", b'{"request": "shutdown"}\n', b"\xff" * 100_000):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(str(sock))
            try:
                client.sendall(payload)
                client.shutdown(socket.SHUT_WR)
                client.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                pass  # the flood is cut off
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(sock))  # connects and leaves without a word
    assert daemon.alive(), daemon.log()
    assert status(daemon).returncode == 0
    assert daemon.path("proc/meminfo").read_text().startswith("MemTotal:")
