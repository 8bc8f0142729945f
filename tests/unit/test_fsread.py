"""The descriptor cache: fresh content, vanished files, bounded descriptors."""

from __future__ import annotations

from pathlib import Path

import pytest

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
