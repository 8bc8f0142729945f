"""The FUSE adapter over a fake core, without mounting: it dispatches each operation to
the core with the caller's pid and maps the core's errors to errno, in one place."""

from __future__ import annotations

import errno
import stat
from collections.abc import Callable
from typing import Any

import mfusepy
import pytest

from containerfs.daemon import fuse_adapter
from containerfs.daemon.counters import Stats
from containerfs.daemon.errors import IsADirectory, NotFound
from containerfs.daemon.fuse_adapter import TREE_TIMEOUT_SECONDS, FuseAdapter

CALLER_PID = 4242
TREE = {"": ["proc", "sys"], "proc": ["meminfo"], "sys": []}


class FakeService:
    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")
        if self.fails:
            raise RuntimeError("cannot start")

    def stop(self) -> None:
        self.events.append("stop")


class FakeLayout:
    value = "v2"


class FakeHierarchies:
    layout = FakeLayout()


class FakeCore:
    """What the adapter may call on ContainerFS; `fail` makes every call raise it."""

    def __init__(self) -> None:
        self.stats = Stats()
        self.sampler = FakeService()
        self.hierarchies = FakeHierarchies()
        self.calls: list[tuple[Any, ...]] = []
        self.fail: BaseException | None = None
        self._handles = 0

    def _call(self, *call: Any) -> None:
        self.calls.append(call)
        if self.fail is not None:
            raise self.fail

    @staticmethod
    def views() -> list[str]:
        return ["proc/meminfo"]

    def is_dir(self, path: str) -> bool:
        self._call("is_dir", path)
        key = path.strip("/")
        if key in TREE:
            return True
        if key == "proc/meminfo":
            return False
        raise NotFound(path)

    def listdir(self, path: str, pid: int | None = None) -> list[str]:
        self._call("listdir", path, pid)
        return TREE[path.strip("/")]

    def file_mode(self, path: str) -> int:
        self._call("file_mode", path)
        return 0o444

    def size(self, path: str) -> int:
        self._call("size", path)
        return 4096

    def open(self, path: str, pid: int) -> int:
        self._call("open", path, pid)
        self._handles += 1
        return self._handles

    def read(self, path_or_handle: Any, size: int, offset: int, pid: int) -> bytes:
        self._call("read", path_or_handle, size, offset, pid)
        return b"x" * size

    def release(self, handle: int) -> None:
        self._call("release", handle)


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> FakeCore:
    monkeypatch.setattr(mfusepy, "fuse_get_context", lambda: (0, 0, CALLER_PID))
    return FakeCore()


def adapter_of(core: FakeCore, services: list[FakeService] | None = None) -> FuseAdapter:
    return FuseAdapter(core, services or [])  # type: ignore[arg-type]


def test_getattr_of_a_directory_and_a_file(core: FakeCore) -> None:
    adapter = adapter_of(core)
    root = adapter.getattr("/")
    assert (root["st_mode"], root["st_nlink"]) == (stat.S_IFDIR | 0o555, 2)
    meminfo = adapter.getattr("/proc/meminfo")
    assert (meminfo["st_mode"], meminfo["st_nlink"]) == (stat.S_IFREG | 0o444, 1)
    assert not [c for c in core.calls if c[0] == "read"], "getattr computes no view"


def test_readdir_lists_the_core_tree(core: FakeCore) -> None:
    adapter = adapter_of(core)
    # each entry with its type (glibc before 2.35 counts cpuN entries of type DT_DIR)
    assert adapter.readdir("/", 0) == [".", "..", ("proc", stat.S_IFDIR, 0), ("sys", stat.S_IFDIR, 0)]
    assert adapter.readdir("/proc", 0) == [".", "..", ("meminfo", stat.S_IFREG, 0)]
    assert adapter.readdir("/sys", 0) == [".", ".."]
    # the listing is the caller's: an overlaid directory shows its container's entries
    assert ("listdir", "/", CALLER_PID) in core.calls


@pytest.mark.parametrize(("size", "offset"), [(4096, 0), (1, 0), (100, 7), (0, 5000)])
def test_read_goes_to_the_core_with_the_callers_pid(core: FakeCore, size: int, offset: int) -> None:
    adapter = adapter_of(core)
    opened = getattr(adapter, "open", None)
    fh = opened("/proc/meminfo", 0) if opened is not None else 0
    assert adapter.read("/proc/meminfo", size, offset, fh) == b"x" * size
    call = next(c for c in core.calls if c[0] == "read")
    assert call[1] in ("/proc/meminfo", fh) and call[2:] == (size, offset, CALLER_PID)


OPERATIONS: list[tuple[str, Callable[[FuseAdapter], object]]] = [
    ("getattr", lambda a: a.getattr("/proc/meminfo")),
    ("readdir", lambda a: a.readdir("/proc", 0)),
    ("read", lambda a: a.read("/proc/meminfo", 10, 0, 1)),
]


@pytest.mark.parametrize(("name", "operation"), OPERATIONS)
@pytest.mark.parametrize(
    ("raised", "code", "counted"),
    [
        (NotFound("/x"), errno.ENOENT, False),
        (IsADirectory("/proc"), errno.EISDIR, False),
        # A bug is EIO and counted, whatever its type: a KeyError is no ENOENT.
        (KeyError("k"), errno.EIO, True),
        (IndexError("i"), errno.EIO, True),
        (RuntimeError("r"), errno.EIO, True),
        (ValueError("v"), errno.EIO, True),
    ],
)
def test_core_errors_map_to_errno(
    core: FakeCore, name: str, operation: Callable[[FuseAdapter], object], raised: Exception, code: int, counted: bool
) -> None:
    adapter = adapter_of(core)
    core.fail = raised
    with pytest.raises(mfusepy.FuseOSError) as caught:
        operation(adapter)
    assert caught.value.errno == code
    assert core.stats.errors == (1 if counted else 0)


def test_unknown_names_are_enoent(core: FakeCore) -> None:
    with pytest.raises(mfusepy.FuseOSError) as caught:
        adapter_of(core).getattr("/proc/nope")
    assert caught.value.errno == errno.ENOENT and core.stats.errors == 0


class Config:
    entry_timeout = attr_timeout = negative_timeout = 0.0
    direct_io = 0
    kernel_cache = auto_cache = 1


def test_init_sets_timeouts_and_starts_services_destroy_stops_them(core: FakeCore) -> None:
    broken, other = FakeService(fails=True), FakeService()
    adapter = adapter_of(core, [broken, other])
    config = Config()
    adapter.init_with_config(None, config)
    assert config.entry_timeout == config.attr_timeout == config.negative_timeout == TREE_TIMEOUT_SECONDS
    assert (config.direct_io, config.kernel_cache, config.auto_cache) == (1, 0, 0)
    # One service that cannot start does not keep the others (or the views) down.
    assert (core.sampler.events, broken.events, other.events) == (["start"], ["start"], ["start"])
    assert adapter.served
    adapter.destroy(None)
    assert (core.sampler.events, other.events) == (["start", "stop"], ["start", "stop"])


def test_the_adapter_names_no_attribute_after_a_fuse_operation() -> None:
    # mfusepy calls any attribute named like an operation (section 5 of the reference).
    operations = {"lock", "flush", "write", "create", "unlink", "mkdir", "rename", "truncate", "fsync"}
    assert not operations & set(dir(FuseAdapter))
    assert fuse_adapter.FuseAdapter.use_ns is True
