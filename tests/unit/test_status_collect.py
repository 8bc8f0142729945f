"""What the daemon answers: the collector over the fixture hosts, and the CLI end to end."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from containerfs.daemon.control import ControlServer, socket_path
from containerfs.daemon.core import ContainerFS, Options
from containerfs.daemon.report import DaemonReport, daemon_report
from containerfs.procfs.mountinfo import parse_mountinfo
from containerfs.status.collect import OomWatch, StatusCollector, count_views
from containerfs.status.exporter import parse_listen
from containerfs.status.model import Views
from containerfs.views.overlays import bind_targets
from containerfs.views.registry import VIEWS

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MiB = 1024 * 1024
WEB = 2000


def make_fs(root: Path) -> ContainerFS:
    return ContainerFS(Options(str(root / "proc"), str(root / "sys"), str(root / "cgroup")))


def report_of(fs: ContainerFS) -> Callable[[], DaemonReport]:
    return functools.partial(daemon_report, fs)


def test_status_reaches_the_daemon_only_through_its_report() -> None:
    code = "import sys, containerfs.status.collect; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules = result.stdout.split()
    assert "containerfs.daemon.report" in modules
    # Not the core, nor what it keeps: counters, the sampler, snapshots.
    for internal in ("core", "counters", "sampler", "snapshots"):
        assert f"containerfs.daemon.{internal}" not in modules


OURS = "containerfs:/var/lib/containerfs"  # the mount source of the daemon at /var/lib/containerfs


def mountinfo_line(mount_id: int, dev: str, root: str, mountpoint: str, fstype: str, source: str = OURS) -> str:
    return f"{mount_id} 1 {dev} {root} {mountpoint} ro,relatime - {fstype} {source} ro\n"


def view(mount_id: int, dev: str, name: str, source: str = OURS) -> str:
    return mountinfo_line(mount_id, dev, f"/proc/{name}", f"/proc/{name}", "fuse.containerfs", source)


CONTAINER_ROOT = mountinfo_line(300, "8:1", "/", "/", "ext4", "/dev/sda1")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([CONTAINER_ROOT], Views(0, 0, 12)),
        ([CONTAINER_ROOT, view(301, "0:45", "meminfo"), view(302, "0:45", "stat")], Views(2, 0, 12)),
        # from a daemon that is gone; one of them covered by the live daemon's
        (
            [CONTAINER_ROOT, view(301, "0:44", "meminfo"), view(302, "0:45", "meminfo"), view(303, "0:44", "stat")],
            Views(1, 1, 12),
        ),
        # another mountpoint's daemon's views, and lxcfs's, are not ours
        (
            [
                CONTAINER_ROOT,
                view(301, "0:50", "meminfo", "containerfs:/srv/other"),
                mountinfo_line(302, "0:51", "/proc/stat", "/proc/stat", "fuse.lxcfs", "lxcfs"),
            ],
            Views(0, 0, 12),
        ),
    ],
)
def test_count_views(lines: list[str], expected: Views) -> None:
    assert count_views(parse_mountinfo("".join(lines)), OURS, "0:45") == expected


KEY = (("memory", "/c"),)


@pytest.mark.parametrize(
    ("observations", "ages"),
    [
        # (kills, now, container uptime) -> age of the last rise
        ([(0, 100.0, 50.0), (0, 110.0, 60.0)], [None, None]),
        ([(0, 100.0, 50.0), (1, 110.0, 60.0), (1, 150.0, 100.0)], [None, 0.0, 40.0]),
        # kills already there at first sight: dated at the container's start, the earliest they can be
        ([(2, 100.0, 30.0), (2, 130.0, 60.0)], [30.0, 60.0]),
        # a recreated cgroup starts from 0: not a new kill
        ([(3, 100.0, 10.0), (0, 120.0, 5.0)], [10.0, 30.0]),
    ],
)
def test_oom_watch(observations: list[tuple[int, float, float]], ages: list[float | None]) -> None:
    watch = OomWatch()
    assert [watch.observe(KEY, kills, now, up) for kills, now, up in observations] == ages


def test_oom_watch_forgets_containers_that_are_gone() -> None:
    watch = OomWatch()
    watch.observe(KEY, 1, 100.0, 10.0)
    watch.keep_only(set())
    assert watch.observe(KEY, 1, 200.0, 500.0) == 500.0  # first sight again


@pytest.mark.parametrize("host", ["v1", "v2", "hybrid"])
def test_collect_over_the_fixture_hosts(host: str) -> None:
    fs = make_fs(FIXTURES / host)
    fs.render_path("proc/loadavg", WEB)  # web reads a view: its load is tracked
    status = StatusCollector(report_of(fs), "/var/lib/containerfs", "3.14.0").collect()
    rows = {row.init_pid: row for row in status.containers}
    web, app = rows[WEB], rows[4001]
    # SCENARIO.md figures
    assert web.kind == "docker" and web.name == "8d2f1c4b7a9e"
    assert web.memory is not None and (web.memory.usage, web.memory.limit) == (300 * MiB, 512 * MiB)
    assert web.memory.working_set == 300 * MiB - 36 * MiB  # minus inactive_file
    assert web.swap is not None and (web.swap.usage, web.swap.limit) == (64 * MiB, 256 * MiB)
    assert web.cpu is not None and (web.cpu.visible, web.cpu.quota) == (2, 1.5)
    assert web.cpu.usage_seconds == pytest.approx(1041.18 + 241.46, abs=0.1)
    assert web.uptime_seconds == pytest.approx(4017.28)
    assert web.pids is not None and (web.pids.current, web.pids.limit) == (5, 1024)
    assert web.oom is not None and web.oom.kills == 1
    assert web.load is not None and app.load is None
    assert app.memory is not None and app.memory.limit == 1024 * MiB
    assert app.pids is not None and app.pids.limit == 4096
    assert app.oom is not None and app.oom.kills == 2
    assert web.views is None, "the fixture processes have no mountinfo"
    assert status.daemon.cgroup_layout == host and status.daemon.reads.container == 1


def test_collect_skips_containers_that_vanish(tmp_path: Path) -> None:
    root = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", root, symlinks=True)
    fs = make_fs(root)
    collector = StatusCollector(report_of(fs), "/x", "3.14.0")
    assert WEB in {row.init_pid for row in collector.collect().containers}
    (root / "proc" / str(WEB) / "stat").unlink()  # exited between discovery and the reads
    assert WEB not in {row.init_pid for row in collector.collect().containers}


def test_collect_counts_live_and_stale_views(tmp_path: Path) -> None:
    root = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", root, symlinks=True)
    own = tmp_path / "own-mountinfo"
    own.write_text(CONTAINER_ROOT + mountinfo_line(50, "0:45", "/", "/var/lib/containerfs", "fuse.containerfs"))
    fs = make_fs(root)
    # What injection binds: the proc views, the cpu directory, one stat per block device.
    targets = bind_targets(fs.views())
    assert len(targets) == len(VIEWS) - 4 + 1 + 6
    lines = [CONTAINER_ROOT] + [
        mountinfo_line(301 + i, "0:45" if i < 6 else "0:40", f"/{p}", f"/{p}", "fuse.containerfs")
        for i, p in enumerate(targets)
    ]
    (root / "proc" / str(WEB) / "mountinfo").write_text("".join(lines))
    status = StatusCollector(report_of(fs), "/var/lib/containerfs", "3.14.0", own_mountinfo=str(own)).collect()
    web = next(row for row in status.containers if row.init_pid == WEB)
    assert web.views == Views(6, len(targets) - 6, len(targets))


def test_unknown_requests_are_refused() -> None:
    collector = StatusCollector(report_of(make_fs(FIXTURES / "v2")), "/x", "3.14.0")
    assert collector.handle({"request": "shutdown"}) == {"ok": False, "error": "unknown request 'shutdown'"}


# -- the command, against a control socket served from the fixture host -------------------


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    run_dir, mountpoint = tmp_path / "run", "/srv/views"
    collector = StatusCollector(report_of(make_fs(FIXTURES / "v2")), mountpoint, "3.14.0")
    server = ControlServer(socket_path(mountpoint, str(run_dir)), collector.handle, peer_uid=os.getuid())
    server.start()
    try:
        yield run_dir, mountpoint
    finally:
        server.stop()


def status_cmd(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "containerfs", "status", "--run-dir", str(run_dir), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_command_outputs(daemon: tuple[Path, str]) -> None:
    run_dir, mountpoint = daemon
    table = status_cmd(run_dir, "--mountpoint", mountpoint)
    assert table.returncode == 0, table.stderr
    assert (
        re.search(r"^8d2f1c4b7a9e +docker +300M/512M", table.stdout, re.M)
        and "pod6b1f5d3e/b7c6d5e4f3a2" in table.stdout
    )

    as_json = status_cmd(run_dir, "--mountpoint", mountpoint, "--json", "--container", "71a2*")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert [c["kind"] for c in data["containers"]] == ["podman"]
    assert data["containers"][0]["memory"]["limit"] == 6 * 1024 * MiB

    metrics = status_cmd(run_dir, "--mountpoint", mountpoint, "--prometheus")
    assert metrics.returncode == 0 and 'containerfs_up{mountpoint="/srv/views"} 1' in metrics.stdout

    # web's 1 OOM kill is dated at its start, 4017 s ago: inside a 5000 s window, not a 900 s one
    check = status_cmd(run_dir, "--mountpoint", mountpoint, "--check")
    assert (check.returncode, check.stdout.split(" - ")[0]) == (0, "CONTAINERFS OK"), check.stdout
    check = status_cmd(run_dir, "--mountpoint", mountpoint, "--check", "--window", "5000")
    # (4017 s, plus the seconds the status commands took since the daemon first saw it)
    assert check.returncode == 2 and re.search(r"8d2f1c4b7a9e: OOM kill 1h0[6-9]m ago \(1 in total\)", check.stdout)
    # app: 200 MiB of its pod's 1 GiB, working set 19%
    check = status_cmd(run_dir, "--mountpoint", mountpoint, "--check", "--memory-warning", "15", "--container", "pod*")
    assert check.returncode == 1 and "pod6b1f5d3e/b7c6d5e4f3a2: memory" in check.stdout


@pytest.mark.parametrize(
    ("args", "code", "stream", "text"),
    [
        ([], 1, "stderr", "containerfs: no daemon serves /nowhere: no control socket"),
        (["--json"], 1, "stderr", "containerfs: no daemon serves /nowhere"),
        (["--check"], 3, "stdout", "CONTAINERFS UNKNOWN - no daemon serves /nowhere"),
        (["--prometheus"], 1, "stdout", 'containerfs_up{mountpoint="/nowhere"} 0'),
        (["--check", "--memory-warning", "99"], 3, "stdout", "warning threshold is above its critical one"),
    ],
)
def test_status_without_a_daemon(tmp_path: Path, args: list[str], code: int, stream: str, text: str) -> None:
    result = status_cmd(tmp_path, "--mountpoint", "/nowhere", *args)
    assert result.returncode == code
    assert text in getattr(result, stream)
    assert "Traceback" not in result.stdout + result.stderr
    if stream == "stderr":
        assert len(result.stderr.splitlines()) == 1


def test_status_with_a_socket_left_by_a_killed_daemon(tmp_path: Path) -> None:
    import socket

    path = socket_path("/nowhere", str(tmp_path))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.close()
    result = status_cmd(tmp_path, "--mountpoint", "/nowhere")
    assert result.returncode == 1
    assert result.stderr.startswith("containerfs: no daemon serves /nowhere: nothing listens on")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "address"),
    [("9500", ("127.0.0.1", 9500)), ("0.0.0.0:9500", ("0.0.0.0", 9500)), ("[::1]:9500", ("::1", 9500))],
)
def test_parse_listen(text: str, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["", "host:", "host:http", "99999"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_listen(text)


def test_metrics_listener(tmp_path: Path) -> None:
    run_dir, mountpoint = tmp_path / "run", "/srv/views"
    collector = StatusCollector(report_of(make_fs(FIXTURES / "v2")), mountpoint, "3.14.0")
    server = ControlServer(socket_path(mountpoint, str(run_dir)), collector.handle, peer_uid=os.getuid())
    server.start()
    argv = [sys.executable, "-m", "containerfs", "status", "--run-dir", str(run_dir), "--mountpoint", mountpoint]
    listener = subprocess.Popen(
        [*argv, "--prometheus", "--listen", "127.0.0.1:0"], cwd=REPO, stderr=subprocess.PIPE, text=True
    )
    try:
        assert listener.stderr is not None
        line = listener.stderr.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)/metrics", line)
        assert url, line
        with urllib.request.urlopen(url.group(1) + "/metrics", timeout=30) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = answer.read().decode()
        assert 'containerfs_up{mountpoint="/srv/views"} 1' in body
        assert re.search(r'^containerfs_container_memory_limit_bytes\{name="8d2f1c4b7a9e",.*\} 536870912$', body, re.M)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(url.group(1) + "/other", timeout=30)
        server.stop()  # the daemon goes away: the listener keeps answering, up 0
        with urllib.request.urlopen(url.group(1) + "/metrics", timeout=30) as answer:
            assert 'containerfs_up{mountpoint="/srv/views"} 0' in answer.read().decode()
        listener.terminate()
        assert listener.wait(timeout=30) == 0
        assert "Traceback" not in listener.stderr.read()
    finally:
        server.stop()
        if listener.poll() is None:
            listener.kill()
            listener.wait()


def test_listen_needs_prometheus(tmp_path: Path) -> None:
    result = status_cmd(tmp_path, "--mountpoint", "/x", "--listen", "9500")
    assert result.returncode == 1 and "add --prometheus" in result.stderr
