"""The low-level adapter speaks the kernel's FUSE protocol: driven here over a
SOCK_SEQPACKET pair, which keeps message boundaries like /dev/fuse, with the fixture hosts."""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerfs.daemon import fuse_lowlevel as ll
from containerfs.daemon.core import ContainerFS, Options

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WEB_INIT = 2000  # the "web" container's init in every fixture host
HEADER = struct.Struct("<IIQQIIIHH")
ATTR_MODE_OFFSET = 8 * 6 + 4 * 3


class Kernel:
    """The kernel's side: sends requests, collects replies and notifications."""

    def __init__(self, fs: ContainerFS) -> None:
        self.ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.theirs = theirs
        self.adapter = ll.LowLevelAdapter(fs)
        self.thread = threading.Thread(target=self.adapter.serve, args=(theirs.fileno(),), daemon=True)
        self.thread.start()
        self.unique = 0
        self.notifications: list[bytes] = []

    def send(self, opcode: int, body: bytes = b"", nodeid: int = 1, pid: int = WEB_INIT) -> int:
        self.unique += 2
        self.ours.send(HEADER.pack(HEADER.size + len(body), opcode, self.unique, nodeid, 0, 0, pid, 0, 0) + body)
        return self.unique

    def reply(self, unique: int) -> tuple[int, bytes]:
        """The reply to unique: (error, payload); notifications on the way are kept."""
        self.ours.settimeout(10)
        while True:
            message = self.ours.recv(1 << 20)
            length, error, got = struct.unpack_from("<IiQ", message)
            assert length == len(message)
            if got == 0:
                self.notifications.append(message)
                continue
            assert got == unique, f"reply to {got}, expected {unique}"
            return error, message[16:]

    def await_notifications(self, count: int) -> list[bytes]:
        """The notifications so far, waiting for more until there are count (sent by a helper
        thread, they may come after the reply to the OPEN that caused them)."""
        self.ours.settimeout(10)
        while len(self.notifications) < count:
            message = self.ours.recv(1 << 20)
            assert struct.unpack_from("<IiQ", message)[2] == 0, "a reply nobody asked for"
            self.notifications.append(message)
        return self.notifications

    def call(self, opcode: int, body: bytes = b"", nodeid: int = 1, pid: int = WEB_INIT) -> tuple[int, bytes]:
        return self.reply(self.send(opcode, body, nodeid, pid))

    def lookup(self, parent: int, name: str) -> int:
        error, payload = self.call(ll.LOOKUP, name.encode() + b"\0", parent)
        assert error == 0
        return int(struct.unpack_from("<Q", payload)[0])

    def node(self, path: str) -> int:
        nodeid = ll.ROOT
        for name in path.split("/"):
            nodeid = self.lookup(nodeid, name)
        return nodeid

    def close(self) -> None:
        self.ours.close()
        self.thread.join(10)
        self.theirs.close()


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    fs = fixture_fs()
    k = Kernel(fs)
    yield k
    k.close()
    assert not k.thread.is_alive(), "the loop did not end when the other side closed"


def fixture_fs() -> ContainerFS:
    root = FIXTURES / "v2"
    return ContainerFS(Options(str(root / "proc"), str(root / "sys"), str(root / "cgroup")))


def read_in(fh: int, offset: int, size: int, flags: int = ll.READ_LOCKOWNER) -> bytes:
    """A READ's arguments; the kernel sets READ_LOCKOWNER on direct I/O, not on page-cache reads."""
    return struct.pack("<QQIIQII", fh, offset, size, flags, 0, 0, 0)


def open_file(kernel: Kernel, path: str) -> tuple[int, int]:
    nodeid = kernel.node(path)
    error, payload = kernel.call(ll.OPEN, struct.pack("<II", os.O_RDONLY, 0), nodeid)
    assert error == 0
    fh, flags, _ = struct.unpack("<QII", payload)
    assert flags == ll.FOPEN_DIRECT_IO | ll.FOPEN_NOFLUSH
    return nodeid, fh


@pytest.mark.parametrize(
    ("major", "minor", "error", "reply_minor", "size"),
    [
        (7, 38, 0, ll.KERNEL_MINOR, 64),
        (7, 22, 0, 22, ll.COMPAT_22_INIT_OUT_SIZE),  # older kernels take the short reply
        (8, 0, 0, ll.KERNEL_MINOR, 64),  # a newer major: answer ours, the kernel asks again
        (6, 0, -errno.EPROTO, None, 0),
    ],
)
def test_init_negotiates_the_protocol(
    kernel: Kernel, major: int, minor: int, error: int, reply_minor: int | None, size: int
) -> None:
    got, payload = kernel.call(ll.INIT, struct.pack("<IIII", major, minor, 131072, 0xFFFFFFFF) + bytes(48), 0)
    assert (got, len(payload)) == (error, size)
    if reply_minor is not None:
        assert struct.unpack_from("<II", payload) == (ll.KERNEL_MAJOR, reply_minor)
    if size == 64 and major == ll.KERNEL_MAJOR:
        flags, max_write = struct.unpack_from("<I", payload, 12)[0], struct.unpack_from("<I", payload, 20)[0]
        assert flags == 0 and max_write == 4096  # no capability the daemon does not use
    kernel.adapter.stop_services()


def test_tree_lookup_getattr_readdir(kernel: Kernel) -> None:
    proc = kernel.node("proc")
    error, payload = kernel.call(ll.GETATTR, bytes(16), proc)
    assert error == 0 and struct.unpack_from("<Q", payload)[0] == ll.TREE_TIMEOUT_SECONDS
    assert stat.S_ISDIR(struct.unpack_from("<I", payload, 16 + ATTR_MODE_OFFSET)[0])
    meminfo = kernel.lookup(proc, "meminfo")
    error, payload = kernel.call(ll.GETATTR, bytes(16), meminfo)
    mode, size = struct.unpack_from("<I", payload, 16 + ATTR_MODE_OFFSET)[0], struct.unpack_from("<Q", payload, 24)[0]
    assert stat.S_ISREG(mode) and mode & 0o777 == 0o444
    assert size >= len(ContainerFS.render_path(kernel.adapter._fs, "proc/meminfo", WEB_INIT))
    # A name that does not exist: node 0 with a timeout, which the kernel remembers.
    error, payload = kernel.call(ll.LOOKUP, b"nothere\0", proc)
    assert error == 0 and struct.unpack_from("<QQQ", payload) == (0, 0, ll.TREE_TIMEOUT_SECONDS)
    assert kernel.node("sys/devices/system/cpu/online") > 0

    def names(nodeid: int, offset: int = 0, size: int = 4096) -> list[tuple[str, int]]:
        error, payload = kernel.call(ll.READDIR, read_in(0, offset, size), nodeid)
        assert error == 0
        found, at = [], 0
        while at < len(payload):
            _ino, next_offset, namelen, _kind = struct.unpack_from("<QQII", payload, at)
            found.append((payload[at + 24 : at + 24 + namelen].decode(), next_offset))
            at += (24 + namelen + 7) // 8 * 8
        return found

    assert [n for n, _ in names(ll.ROOT)] == [".", "..", "proc", "sys"]
    listed = names(proc)
    assert [n for n, _ in listed][2:] == kernel.adapter._fs.listdir("proc")
    # Resuming at an entry's offset continues after it; a small buffer gets fewer entries.
    assert names(proc, listed[3][1]) == listed[4:]
    assert names(proc, 0, 64) == listed[:2]


def test_nodes_follow_the_cores_tree(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Node ids are handed out as the core's tree has entries: one that appears later gets
    one, one that goes away looks up as absent and its old id reads ENOENT."""
    fs = kernel.adapter._fs
    listdir, is_dir = fs.listdir, fs.is_dir

    def grown_listdir(path: str) -> list[str]:
        return [*listdir(path), "extra"] if path.strip("/") == "proc" else listdir(path)

    def grown_is_dir(path: str) -> bool:
        return False if path.strip("/") == "proc/extra" else is_dir(path)

    proc = kernel.node("proc")
    assert kernel.call(ll.LOOKUP, b"extra\0", proc)[1][:8] == bytes(8)  # absent: node 0
    monkeypatch.setattr(fs, "listdir", grown_listdir)
    monkeypatch.setattr(fs, "is_dir", grown_is_dir)
    size = fs.size
    monkeypatch.setattr(fs, "size", lambda path: 4096 if path.strip("/") == "proc/extra" else size(path))
    file_mode = fs.file_mode
    monkeypatch.setattr(fs, "file_mode", lambda path: 0o444 if path.strip("/") == "proc/extra" else file_mode(path))
    extra = kernel.lookup(proc, "extra")
    assert extra not in (proc, kernel.node("proc/meminfo")) and kernel.lookup(proc, "extra") == extra
    monkeypatch.undo()
    assert kernel.call(ll.LOOKUP, b"extra\0", proc)[1][:8] == bytes(8)
    assert kernel.call(ll.GETATTR, bytes(16), extra)[0] == -errno.ENOENT
    for bad in (b"..\0", b".\0", b"a/b\0", b"\0"):
        assert kernel.call(ll.LOOKUP, bad, proc)[1][:8] == bytes(8)


def test_open_read_release_serve_the_readers_container(kernel: Kernel) -> None:
    nodeid, fh = open_file(kernel, "proc/meminfo")
    error, content = kernel.call(ll.READ, read_in(fh, 0, 65536), nodeid)
    assert error == 0 and content.startswith(b"MemTotal:")
    assert content == kernel.adapter._fs.render_path("proc/meminfo", WEB_INIT)
    error, tail = kernel.call(ll.READ, read_in(fh, 10, 65536), nodeid)
    assert (error, tail) == (0, content[10:])  # later offsets: the handle's content
    assert kernel.call(ll.READ, read_in(fh, len(content), 65536), nodeid) == (0, b"")
    assert kernel.call(ll.RELEASE, struct.pack("<QIIQ", fh, 0, 0, 0), nodeid) == (0, b"")
    # The handle is gone with its content.
    assert kernel.adapter._fs.snapshots.get(fh) is None
    # Direct-I/O reads leave the inode's size alone: no notification ever.
    open_file(kernel, "proc/meminfo")
    assert kernel.notifications == []


def release(kernel: Kernel, nodeid: int, fh: int) -> None:
    assert kernel.call(ll.RELEASE, struct.pack("<QIIQ", fh, 0, 0, 0), nodeid) == (0, b"")


def test_after_page_cache_reads_an_open_drops_the_pages_and_sets_the_size_back(kernel: Kernel) -> None:
    """sendfile reads through the page cache, which every open shares and which a short read
    shrinks the kernel's size of.  The next OPEN drops the pages (INVAL_INODE) and sets the size
    back: one byte stored at the size - 1 when no other file is open on the node, else the size
    marked stale (an empty store) and the node kept marked until then."""
    nodeid, fh = open_file(kernel, "proc/meminfo")
    error, content = kernel.call(ll.READ, read_in(fh, 0, 4096, flags=0), nodeid)
    assert error == 0 and 0 < len(content) < 4096
    assert kernel.notifications == []  # not now: the short reader is still reading
    size = kernel.adapter._fs.size("proc/meminfo")
    inval, store = struct.Struct("<IiQQqq"), struct.Struct("<IiQQQI")
    _, second = open_file(kernel, "proc/meminfo")  # the first is still open: no waiting
    dropped, stale = kernel.await_notifications(2)
    assert inval.unpack_from(dropped) == (inval.size, ll.NOTIFY_INVAL_INODE, 0, nodeid, 0, 0)
    assert store.unpack_from(stale) == (len(stale), ll.NOTIFY_STORE, 0, nodeid, size, 0)
    # Read by the page cache again, the file is dropped again; the size still waits.
    assert kernel.call(ll.READ, read_in(second, 0, 4096, flags=0), nodeid)[0] == 0
    release(kernel, nodeid, fh)
    release(kernel, nodeid, second)
    open_file(kernel, "proc/meminfo")  # alone now
    dropped, stored = kernel.notifications[2:]
    assert inval.unpack_from(dropped)[1] == ll.NOTIFY_INVAL_INODE
    assert store.unpack_from(stored) == (len(stored), ll.NOTIFY_STORE, 0, nodeid, size - 1, 1)
    assert size - 1 >= 2 * len(content)  # the stored byte's page is beyond any content
    open_file(kernel, "proc/meminfo")
    assert len(kernel.notifications) == 4  # nothing more until a page-cache read again


def test_unsupported_requests_get_enosys_and_forgets_no_reply(kernel: Kernel) -> None:
    nodeid, fh = open_file(kernel, "proc/stat")
    # FLUSH and INTERRUPT: ENOSYS once and the kernel stops sending them.
    assert kernel.call(ll.FLUSH, struct.pack("<QIIQ", fh, 0, 0, 0), nodeid)[0] == -errno.ENOSYS
    assert kernel.call(ll.INTERRUPT, struct.pack("<Q", 99), 0)[0] == -errno.ENOSYS
    for opcode in (21, 22, 23, 34, 4, 47):  # xattrs, access, setattr, copy_file_range
        assert kernel.call(opcode, bytes(64), nodeid)[0] == -errno.ENOSYS
    # FORGET and BATCH_FORGET have no reply: the next reply is the GETATTR's.
    kernel.send(ll.FORGET, struct.pack("<Q", 1), nodeid)
    kernel.send(ll.BATCH_FORGET, struct.pack("<IIQQ", 1, 0, nodeid, 1), 0)
    assert kernel.call(ll.GETATTR, bytes(16), nodeid)[0] == 0
    error, _ = kernel.call(ll.STATFS, b"", ll.ROOT)
    assert error == 0


def test_errors_map_to_errno_and_the_loop_goes_on(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    proc = kernel.node("proc")
    assert kernel.call(ll.OPEN, struct.pack("<II", 0, 0), proc)[0] == -errno.EISDIR
    assert kernel.call(ll.GETATTR, bytes(16), 999)[0] == -errno.ENOENT
    assert kernel.call(ll.OPENDIR, struct.pack("<II", 0, 0), kernel.node("proc/stat"))[0] == -errno.ENOTDIR
    # A request shorter than its operation's arguments, a huge name: errors, not a dead loop.
    assert kernel.call(ll.READ, b"\0" * 3, proc)[0] == -errno.EIO
    error, payload = kernel.call(ll.LOOKUP, b"x" * 60000 + b"\0", proc)
    assert error == 0 and struct.unpack_from("<Q", payload)[0] == 0
    nodeid, fh = open_file(kernel, "proc/meminfo")

    def broken(*args: object) -> bytes:
        raise RuntimeError("a bug")

    errors = kernel.adapter._fs.stats.errors
    monkeypatch.setattr(kernel.adapter._fs, "read", broken)
    assert kernel.call(ll.READ, read_in(fh, 0, 4096), nodeid)[0] == -errno.EIO
    assert kernel.adapter._fs.stats.errors == errors + 1
    monkeypatch.undo()
    error, content = kernel.call(ll.READ, read_in(fh, 0, 4096), nodeid)
    assert error == 0 and content.startswith(b"MemTotal:")


def test_a_signal_while_waiting_ends_the_loop() -> None:
    fs = fixture_fs()
    adapter = ll.LowLevelAdapter(fs)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    previous = signal.signal(signal.SIGALRM, adapter.signalled)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        adapter.serve(theirs.fileno())  # returns only because of the signal
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        ours.close()
        theirs.close()


def test_a_refused_reply_is_answered_eio_and_the_loop_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reply the kernel refuses (EINVAL) must not end the loop nor leave the reader waiting."""
    real_write = os.write
    refused: list[bytes] = []

    def refusing(fd: int, data: bytes) -> int:
        if not refused and len(data) > 16:
            refused.append(bytes(data))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", refusing)
    kernel = Kernel(fixture_fs())
    try:
        error, payload = kernel.call(ll.LOOKUP, b"proc\0", ll.ROOT)
        assert (error, payload) == (-errno.EIO, b"") and refused
        assert kernel.lookup(ll.ROOT, "proc") > 0
        assert kernel.adapter._fs.stats.errors == 1
    finally:
        kernel.close()


def test_directories_are_listed_for_the_reading_process(kernel: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    """Overlaid directories show each container its own entries (its cpuN): READDIR asks the
    core with the caller's pid."""
    fs = kernel.adapter._fs
    listdir = fs.listdir
    callers: list[int | None] = []

    def recording(path: str, pid: int | None = None) -> list[str]:
        callers.append(pid)
        return listdir(path, pid)

    monkeypatch.setattr(fs, "listdir", recording)
    proc = kernel.node("proc")
    assert kernel.call(ll.READDIR, read_in(0, 0, 4096), proc, pid=4321)[0] == 0
    assert callers == [4321]
