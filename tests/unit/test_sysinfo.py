"""sysinfo(2): the kernel's layouts, the answers (the views' figures), the daemon's socket."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from containerfs.daemon.core import ContainerFS, Options
from containerfs.procfs.loadavg import FSHIFT
from containerfs.sysinfo import abi
from containerfs.sysinfo.holder import ask_daemon
from containerfs.sysinfo.paths import holder_pid, sysinfo_paths
from containerfs.sysinfo.service import SysinfoService, answer, systemd_unit_argv

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WEB_INIT = 2000  # the "web" container's init in every fixture host
HOST_SHELL = 1100

C_LAYOUT = r"""
#include <stdio.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <linux/seccomp.h>
#include <linux/sysinfo.h>
int main(void) {
    printf("%zu %zu %zu\n", sizeof(struct sysinfo), sizeof(struct seccomp_notif), sizeof(struct seccomp_notif_resp));
    printf("%lu %lu %lu %lu\n", (unsigned long)SECCOMP_IOCTL_NOTIF_RECV, (unsigned long)SECCOMP_IOCTL_NOTIF_SEND,
           (unsigned long)SECCOMP_IOCTL_NOTIF_ID_VALID, (unsigned long)SECCOMP_USER_NOTIF_FLAG_CONTINUE);
    printf("%zu %zu %zu %zu %zu\n", offsetof(struct sysinfo, loads), offsetof(struct sysinfo, procs),
           offsetof(struct sysinfo, totalhigh), offsetof(struct sysinfo, mem_unit),
           offsetof(struct seccomp_notif, data) + offsetof(struct seccomp_data, args));
    return 0;
}
"""


def test_layouts_and_ioctls_match_the_kernel_headers(tmp_path: Path) -> None:
    source = tmp_path / "layout.c"
    source.write_text(C_LAYOUT)
    subprocess.run(["gcc", "-o", str(tmp_path / "layout"), str(source)], check=True, capture_output=True)
    sizes, ioctls, offsets = subprocess.run([str(tmp_path / "layout")], capture_output=True, text=True).stdout.split(
        "\n"
    )[:3]
    assert list(map(int, sizes.split())) == [abi.SYSINFO_SIZE, abi.NOTIF_SIZE, abi.RESP_SIZE] == [112, 80, 24]
    assert list(map(int, ioctls.split())) == [abi.NOTIF_RECV, abi.NOTIF_SEND, abi.NOTIF_ID_VALID, abi.FLAG_CONTINUE]
    # Where our struct formats put the fields (struct.calcsize of the prefix).
    assert list(map(int, offsets.split())) == [8, 80, 88, 104, 16 + 16]


def test_sysinfo_round_trip_and_clamping() -> None:
    info = abi.Sysinfo(12, (1, 2, 3), 4, 5, 6, 7, 8, 9, 10, 1)
    assert abi.unpack_sysinfo(abi.pack_sysinfo(info)) == info
    wild = abi.Sysinfo(-5, (-1, 1 << 70, 0), -1, 1 << 65, 0, 0, 0, 0, 70000, 0)
    back = abi.unpack_sysinfo(abi.pack_sysinfo(wild))
    # Never a negative or wrapped figure (a huge one crashes free), procs saturates, mem_unit >= 1.
    assert back == abi.Sysinfo(0, (0, (1 << 64) - 1, 0), 0, (1 << 64) - 1, 0, 0, 0, 0, 0xFFFF, 1)


@pytest.mark.parametrize(
    ("arch", "nr", "native"),
    [
        (0xC000003E, 99, True),  # x86_64 sysinfo
        (0xC000003E, 99 | abi.X32_SYSCALL_BIT, False),  # x32: 32-bit longs
        (0x40000003, 116, False),  # i386 sysinfo
        (0xC00000B7, 179, True),  # aarch64 sysinfo
        (0xC000003E, 83, False),  # x86_64 mkdir: not ours
    ],
)
def test_only_native_sysinfo_calls_are_answered(arch: int, nr: int, native: bool) -> None:
    raw = struct.pack("<QIIiIQ6Q", 7, 1234, 0, nr, arch, 0, 0xDEAD, 0, 0, 0, 0, 0)
    notif = abi.parse_notification(raw)
    assert (notif.id, notif.pid, notif.args[0]) == (7, 1234, 0xDEAD)
    assert notif.is_native_sysinfo() is native


def meminfo_kb(text: bytes, key: str) -> int:
    line = next(line for line in text.decode().splitlines() if line.startswith(key + ":"))
    return int(line.split()[1])


@pytest.mark.parametrize("layout", ["v1", "v2", "hybrid"])
def test_answer_is_what_the_views_show(layout: str) -> None:
    root = FIXTURES / layout
    fs = ContainerFS(Options(str(root / "proc"), str(root / "sys"), str(root / "cgroup")))
    info = abi.unpack_sysinfo(answer(fs, WEB_INIT))
    meminfo = fs.render_path("proc/meminfo", WEB_INIT)
    assert info.mem_unit == 1
    assert info.totalram == meminfo_kb(meminfo, "MemTotal") * 1024
    assert info.freeram == meminfo_kb(meminfo, "MemFree") * 1024
    assert info.bufferram == meminfo_kb(meminfo, "Buffers") * 1024
    assert info.totalswap == meminfo_kb(meminfo, "SwapTotal") * 1024
    assert info.freeswap == meminfo_kb(meminfo, "SwapFree") * 1024
    assert info.totalram < meminfo_kb(fs.host.proc("meminfo").encode(), "MemTotal") * 1024
    uptime = float(fs.render_path("proc/uptime", WEB_INIT).split()[0])
    assert info.uptime - 1 <= uptime <= info.uptime
    loadavg = fs.render_path("proc/loadavg", WEB_INIT).decode().split()
    assert info.procs == int(loadavg[3].split("/")[1]) > 0
    state = next(iter(fs.registry.all()))
    assert info.loads == tuple(v << (abi.SI_LOAD_SHIFT - FSHIFT) for v in state.averages)


def test_a_host_process_gets_the_kernels_answer() -> None:
    root = FIXTURES / "v2"
    fs = ContainerFS(Options(str(root / "proc"), str(root / "sys"), str(root / "cgroup")))
    assert answer(fs, HOST_SHELL) == b""


@pytest.fixture
def service(tmp_path: Path):
    root = FIXTURES / "v2"
    fs = ContainerFS(Options(str(root / "proc"), str(root / "sys"), str(root / "cgroup")))
    paths = sysinfo_paths(str(tmp_path / "mnt"), str(tmp_path / "run"))
    svc = SysinfoService(fs, paths, holder=False)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def test_daemon_socket_answers_and_survives_bad_clients(service: SysinfoService) -> None:
    path = service.paths.answers
    assert ask_daemon(path, WEB_INIT) == answer(service.fs, WEB_INIT)
    assert ask_daemon(path, HOST_SHELL) is None
    assert ask_daemon(path, 999999) is None  # no such process: the kernel answers
    # A client that sends half a request and one that sends nothing must not stop the service.
    with socket.socket(socket.AF_UNIX) as half:
        half.connect(path)
        half.sendall(b"\x01\x02")
        started = time.monotonic()
        with socket.socket(socket.AF_UNIX) as mute:
            mute.connect(path)
            assert ask_daemon(path, WEB_INIT, timeout=3.0) == answer(service.fs, WEB_INIT)
    assert time.monotonic() - started < 2.5
    assert service.answered == 2  # the two questions about WEB_INIT


def test_stopped_daemon_socket_means_no_answer(service: SysinfoService) -> None:
    service.stop()
    assert not Path(service.paths.answers).exists()
    assert ask_daemon(service.paths.answers, WEB_INIT) is None


def test_holder_pid_ignores_stale_and_reused_pid_files(tmp_path: Path) -> None:
    paths = sysinfo_paths(str(tmp_path / "mnt"), str(tmp_path / "run"))
    Path(paths.pidfile).parent.mkdir(parents=True)
    assert holder_pid(paths) is None
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    Path(paths.pidfile).write_text("42\n")
    (proc / "42" / "cmdline").write_bytes(b"sleep\0infinity\0")
    assert holder_pid(paths, str(proc)) is None  # a reused pid
    argv = ["python3", "-m", "containerfs.sysinfo.holder", "--listener", paths.listener]
    (proc / "42" / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    assert holder_pid(paths, str(proc)) == 42
    Path(paths.pidfile).write_text("garbage")
    assert holder_pid(paths, str(proc)) is None


def test_socket_paths_fit_a_socket_address(tmp_path: Path) -> None:
    paths = sysinfo_paths("/var/lib/" + "x" * 120, "/run/containerfs")
    for path in (paths.listener, paths.answers):
        assert len(path.encode()) <= 107
    assert paths.listener != paths.answers
    assert paths.pidfile.endswith(".pid") and {os.path.dirname(p) for p in paths[1:]} == {paths.directory}
    with pytest.raises(ValueError, match="too long"):
        sysinfo_paths("/var/lib/containerfs", str(tmp_path / ("d" * 100)))


def test_under_systemd_the_holder_gets_a_unit_of_its_own(tmp_path: Path) -> None:
    paths = sysinfo_paths("/var/lib/containerfs", "/run/containerfs")
    assert systemd_unit_argv(paths, {}) == []
    argv = systemd_unit_argv(paths, {"INVOCATION_ID": "x"})
    if shutil.which("systemd-run") is None:
        assert argv == []
    else:
        assert argv[0] == "systemd-run" and argv[-1] == "--"
        assert any(a.startswith("--unit=containerfs-sysinfo-") for a in argv)
