"""The committed fixture hosts are exactly what tests/fixtures/generate.py writes."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path
from types import ModuleType

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
HOSTS = ("v1", "v2", "hybrid")
GENERATED = ("proc", "sys", "cgroup")  # SCENARIO.md is written by hand


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fixture_generator", FIXTURES / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry below root: relative path -> (kind, content or link target)."""
    entries: dict[str, tuple[str, bytes]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                entry = ("symlink", os.readlink(path).encode())
            elif stat.S_ISDIR(mode):
                entry = ("dir", b"")
            elif stat.S_ISREG(mode):
                entry = ("file", Path(path).read_bytes())
            else:
                entry = (f"special {stat.S_IFMT(mode):o}", b"")
            entries[os.path.relpath(path, root)] = entry
    return entries


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("fixtures")
    load_generator().main(str(target))
    return target


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("part", GENERATED)
def test_fixture_tree_matches_the_generator(generated: Path, host: str, part: str) -> None:
    committed, fresh = tree(FIXTURES / host / part), tree(generated / host / part)
    assert committed, f"{host}/{part} is empty"
    assert sorted(committed.keys() - fresh.keys()) == [], "in the fixtures, not written by generate.py"
    assert sorted(fresh.keys() - committed.keys()) == [], "written by generate.py, missing from the fixtures"
    differ = sorted(path for path in committed if committed[path] != fresh[path])
    assert differ == [], "differ from generate.py's output: run python tests/fixtures/generate.py"


def test_the_generator_writes_only_the_generated_parts(generated: Path) -> None:
    assert sorted(p.name for p in generated.iterdir()) == sorted(HOSTS)
    for host in HOSTS:
        assert sorted(p.name for p in (generated / host).iterdir()) == sorted(GENERATED)
