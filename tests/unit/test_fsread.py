"""The descriptor cache: fresh content, vanished files, bounded descriptors."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest

from containerfs.host import fsread
from containerfs.host.fsread import FileCache, read_text


def test_rereads_see_new_content_and_vanished_files_raise(tmp_path: Path) -> None:
    cache = FileCache(max_open=8)
    target = tmp_path / "memory.current"
    target.write_text("1\n")
    assert cache.read(str(target)) == "1\n"
    target.write_text("22\n")  # same inode, rewritten
    assert cache.read(str(target)) == "22\n"
    target.unlink()
    assert cache.read_optional(str(tmp_path / "absent")) is None
    with pytest.raises(FileNotFoundError):
        cache.read(str(tmp_path / "absent"))


def test_descriptors_are_bounded_and_forgotten_by_directory(tmp_path: Path) -> None:
    cache = FileCache(max_open=4)
    for name in "abcdef":
        (tmp_path / "cg" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "cg" / name).write_text(name)
        assert cache.read(str(tmp_path / "cg" / name)) == name
    assert len(cache.paths()) == 4  # the oldest were closed
    (tmp_path / "other").write_text("x")
    cache.read(str(tmp_path / "other"))
    cache.forget_under(str(tmp_path / "cg"))
    assert cache.paths() == [str(tmp_path / "other")]


def test_large_files_are_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "cpuinfo"
    text = "processor\t: 0\n" * 20000  # ~280 KB, several read chunks
    big.write_text(text)
    assert FileCache(max_open=2).read(str(big)) == text


@pytest.mark.parametrize("path", ["/proc/self/maps", "/proc/self/smaps"])
def test_multi_page_seq_files_are_read_whole(path: str) -> None:
    # These return about a page per read(2); smaps of a Python process spans dozens.
    with open(path, "rb") as f:
        expected_lines = f.read().count(b"\n")
    text = read_text(path)
    assert len(text) > 8192
    assert abs(text.count("\n") - expected_lines) < 50  # the process's own mappings may change slightly
    cache = FileCache(max_open=4)
    assert abs(cache.read(path).count("\n") - expected_lines) < 50


PRESSURE_SCRIPT = r"""
import os, resource, sys
from containerfs.host import fsread
from containerfs.host.fsread import FileCache, read_text
directory = sys.argv[1]
cache = FileCache(max_open=1000)
in_use = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (in_use + 8, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
names = sorted(os.listdir(directory))
for round in range(3):
    for name in names:
        assert cache.read(os.path.join(directory, name)) == name, name
        assert read_text(os.path.join(directory, name)) == name, name
print(cache.shrinks, len(cache.paths()), cache.max_open)
"""


def test_descriptor_pressure_shrinks_the_cache_and_reads_stay_correct(tmp_path: Path) -> None:
    """A real EMFILE: the process's descriptor limit is lowered below what the cache wants."""
    for i in range(40):
        (tmp_path / f"f{i:02}").write_text(f"f{i:02}")
    result = subprocess.run(
        [sys.executable, "-c", PRESSURE_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    shrinks, kept, max_open = map(int, result.stdout.split())
    assert shrinks >= 1 and kept <= 8 and max_open < 40


def test_forced_emfile_with_an_empty_cache_is_raised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    # Only this test's caches may give descriptors back (not those other tests left alive).
    monkeypatch.setattr(fsread, "_CACHES", weakref.WeakSet())
    cache = FileCache(max_open=4)
    real_open = os.open
    calls = []

    def emfile(path: str, flags: int, *args: int) -> int:
        calls.append(path)
        if len(calls) <= 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", emfile)
    # Nothing cached to give back: the error stands.
    with pytest.raises(OSError) as err:
        cache.read(str(tmp_path / "a"))
    assert err.value.errno == errno.EMFILE
    # With a descriptor cached, the cache gives it back and the open is retried.
    monkeypatch.setattr(os, "open", real_open)
    assert cache.max_open == 0  # under pressure it keeps nothing: open, read, close
    assert cache.read(str(tmp_path / "a")) == "a" and cache.paths() == []
    cache = FileCache(max_open=4)
    (tmp_path / "b").write_text("b")
    cache.read(str(tmp_path / "b"))
    calls.clear()
    monkeypatch.setattr(os, "open", emfile)
    assert cache.read(str(tmp_path / "a")) == "a"
    assert cache.shrinks == 1 and len(calls) == 2


def test_fifos_and_sockets_over_kernel_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "memory.current"
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "cpu.stat"))
    cache = FileCache(max_open=4)
    started = time.monotonic()
    for path in (fifo, tmp_path / "cpu.stat"):
        with pytest.raises(OSError):
            read_text(str(path))
        with pytest.raises(OSError):
            cache.read(str(path))
    sock.close()
    assert time.monotonic() - started < 1
    assert cache.paths() == []
