"""The watcher's wake-up on new cgroup directories: real inotify on a temporary tree."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from containerfs.inject.cgroupwatch import CgroupCreations


@pytest.fixture
def pipe():
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(read_end)
    os.close(write_end)


def test_new_directories_wake_and_are_watched_in_turn(tmp_path: Path, pipe: tuple[int, int]) -> None:
    (tmp_path / "system.slice").mkdir()
    creations = CgroupCreations(str(tmp_path))
    try:
        assert creations.watched == 2
        assert creations.wait(0.05, pipe[0]) is False  # nothing yet: the timeout
        (tmp_path / "kubepods" / "pod1").mkdir(parents=True)  # a tree appears at once
        assert creations.wait(1, pipe[0]) is True
        assert creations.watched == 4
        (tmp_path / "kubepods" / "pod1" / "c1").mkdir()  # inside a directory that appeared
        assert creations.wait(1, pipe[0]) is True
        (tmp_path / "kubepods" / "pod1" / "memory.max").write_text("")  # files are not cgroups
        assert creations.wait(0.05, pipe[0]) is False
        for gone in ("kubepods/pod1/memory.max", "kubepods/pod1/c1", "kubepods/pod1", "kubepods"):
            path = tmp_path / gone
            path.unlink() if path.is_file() else path.rmdir()
        creations.wait(0.2, pipe[0])
        assert creations.watched == 2
    finally:
        creations.close()


def test_the_wake_pipe_ends_a_wait_at_once(tmp_path: Path, pipe: tuple[int, int]) -> None:
    creations = CgroupCreations(str(tmp_path))
    try:
        os.write(pipe[1], b"x")
        started = time.monotonic()
        assert creations.wait(10, pipe[0]) is False
        assert time.monotonic() - started < 1
    finally:
        creations.close()
