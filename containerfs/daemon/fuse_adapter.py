"""The thin FUSE adapter: dispatch to the core, map its errors to errno in one place.

Every kernel round trip costs more than computing a small view, so the adapter avoids
the ones it can: long entry/attr/negative timeouts (the tree never changes) and no flush
handler (answered ENOSYS once, then the kernel stops sending it).  A read is then OPEN,
READ, READ at EOF and RELEASE; lxcfs needs seven requests.  OPEN and RELEASE call the
core: an open file's content lives in its handle (seq_file semantics), which is what
keeps one reader's content from ever reaching another.  Writes never arrive: the mount
is read-only, so the kernel refuses them with EROFS.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import queue
import signal
import stat
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

# mfusepy picks libfuse 2 when both are installed unless told; the views need libfuse 3.
os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
import mfusepy

from containerfs.daemon.core import ContainerFS
from containerfs.daemon.errors import IsADirectory, NotFound, ReadFailed
from containerfs.host.mounttable import mount_source

log = logging.getLogger(__name__)

_ERRNO = {NotFound: errno.ENOENT, IsADirectory: errno.EISDIR, ReadFailed: errno.EIO}
_CORE_ERRORS = tuple(_ERRNO)
# The kernel asks again only when these expire.  The tree changes only when a block
# device comes or goes: a new one is looked up by name when listed, a removed one's
# cached entry reads ENOENT.
TREE_TIMEOUT_SECONDS = 86400.0
# How long an OPEN waits for the page cache to be dropped (see SizeKeeper).
_DROP_WAIT_SECONDS = 0.02
_PAGE = 4096

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}

F = TypeVar("F", bound=Callable[..., Any])


def _errors_to_errno(method: F) -> F:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except _CORE_ERRORS as err:
            raise mfusepy.FuseOSError(_ERRNO[type(err)]) from err
        except Exception as err:
            args[0]._fs.stats.error()
            log.exception("%s failed", method.__name__)
            raise mfusepy.FuseOSError(errno.EIO) from err

    return wrapper  # type: ignore[return-value]


class _Buf(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("flags", ctypes.c_int),
        ("mem", ctypes.c_void_p),
        ("fd", ctypes.c_int),
        ("pos", ctypes.c_int64),
    ]


class _BufVec(ctypes.Structure):
    # struct fuse_bufvec with its one inline buffer (mfusepy declares a pointer there).
    _fields_ = [("count", ctypes.c_size_t), ("idx", ctypes.c_size_t), ("off", ctypes.c_size_t), ("buf", _Buf)]


class SizeKeeper:
    """Puts each view's reported size back into the kernel's inode after short reads.

    sendfile and splice read through the page cache up to the inode's size, and the
    kernel shrinks that size to wherever a page-cache read came back short: after one
    container's shorter content every longer one would be cut there.  An empty
    FUSE_NOTIFY_STORE at the reported size grows it back without a GETATTR; it is sent
    at every OPEN (before the opener reads) and RELEASE (after a reader's short read).
    The kernel names files by node id, which the high-level libfuse reports as st_ino:
    a thread learns them by stat()ing the mount once it is served.

    The page cache is shared by every open of a file, and the kernel does not drop it at
    an open with direct_io: sendfile in one container would be served the pages another
    container's sendfile filled.  So at every OPEN the file's cached pages are dropped
    (FUSE_NOTIFY_INVAL_INODE) before the opener reads.  Dropping waits for pages locked by
    reads in flight, which this single-threaded loop answers: a helper thread sends it
    while the loop waits a little, then goes on regardless (never a deadlock; under such
    contention the opener may still meet a page filled for another reader).  Only files
    that may have cached pages are dropped: the page cache reads whole pages at page
    offsets and never past the reported size, so such a read marks its file (a read()
    with a page-sized buffer does too; larger buffers, the common case, do not).
    """

    def __init__(self, fs: ContainerFS, mountpoint: str) -> None:
        self._fs = fs
        self._mountpoint = mountpoint
        self._session: int | None = None
        self._nodes: dict[str, int] = {}
        self._learning = threading.Lock()
        self._empty = _BufVec(1, 0, 0, _Buf(0, 0, None, -1, 0))
        notify = getattr(mfusepy._libfuse, "fuse_lowlevel_notify_store", None)
        inval = getattr(mfusepy._libfuse, "fuse_lowlevel_notify_inval_inode", None)
        self._notify = notify if inval is not None else None
        self._inval = inval
        self._to_drop: queue.SimpleQueue[tuple[int, threading.Event]] = queue.SimpleQueue()
        self._cached: set[str] = set()  # files whose pages may be in the page cache
        if notify is not None and inval is not None:
            notify.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int]
            inval.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int64, ctypes.c_int64]
            mfusepy._libfuse.fuse_get_session.restype = ctypes.c_void_p
            mfusepy._libfuse.fuse_get_session.argtypes = [ctypes.c_void_p]

    def attach(self) -> None:
        """Called in a FUSE handler (init): the session to notify; then learn the node ids."""
        if self._notify is None:
            return
        self._session = mfusepy._libfuse.fuse_get_session(mfusepy._libfuse.fuse_get_context().contents.fuse)
        threading.Thread(target=self._dropper, name="page-dropper", daemon=True).start()
        self.learn()

    def _dropper(self) -> None:
        assert self._inval is not None
        while True:
            node, done = self._to_drop.get()
            try:
                self._inval(self._session, node, 0, 0)
            finally:
                done.set()

    def read_pages(self, path: str, size: int, offset: int) -> None:
        if size % _PAGE == 0 and offset % _PAGE == 0 and offset + size <= self._fs.size(path):
            self._cached.add(path)

    def drop_pages(self, path: str) -> None:
        """Drop the file's cached pages before its opener reads (see the class comment)."""
        if path not in self._cached:
            return
        self._cached.discard(path)
        node = self._nodes.get(path.strip("/"))
        if node is None or self._session is None or self._notify is None:
            return
        done = threading.Event()
        self._to_drop.put((node, done))
        done.wait(_DROP_WAIT_SECONDS)

    def learn(self) -> None:
        # Never from the loop's own thread: a stat of our mount waits for the loop.
        if self._learning.acquire(blocking=False):
            threading.Thread(target=self._learn, name="size-keeper", daemon=True).start()

    def _learn(self) -> None:
        try:
            for path in self._fs.views():
                try:
                    self._nodes[path] = os.stat(os.path.join(self._mountpoint, path)).st_ino
                except OSError as err:
                    log.warning("cannot learn the node of %s: %s", path, err)
        finally:
            self._learning.release()

    def restore(self, path: str) -> None:
        key = path.strip("/")
        node = self._nodes.get(key)
        if node is None or self._session is None or self._notify is None:
            return
        # ENOENT: the kernel forgot the node and libfuse numbers it anew when looked up.
        rc = self._notify(self._session, node, self._fs.size(path), ctypes.byref(self._empty), 0)
        if rc == -errno.ENOENT:
            self._nodes.pop(key, None)
            self.learn()


class FuseAdapter:
    """mfusepy calls these methods by FUSE operation name."""

    use_ns = True

    def __init__(self, fs: ContainerFS, services: Sequence[Service] = (), mountpoint: str | None = None) -> None:
        self._fs = fs
        self._services = [fs.sampler, *services]
        self._sizes = SizeKeeper(fs, mountpoint) if mountpoint is not None else None
        self.served = False
        now = time.time_ns()
        self._times = {"st_atime": now, "st_mtime": now, "st_ctime": now}

    def init_with_config(self, conn_info: Any, config: Any) -> None:
        if config is not None:
            config.entry_timeout = config.attr_timeout = config.negative_timeout = TREE_TIMEOUT_SECONDS
            # Every reader gets its own content: no page cache, reads go to the daemon.
            config.direct_io = 1
            config.kernel_cache = config.auto_cache = 0
        # Threads start here, after libfuse has daemonized (fork keeps only one thread).
        # They inherit a mask without the stop signals: libfuse's handler only sets a flag,
        # so SIGTERM must land on this thread, the loop's, to interrupt its read.
        unmasked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for service in self._services:
                try:
                    service.start()
                except Exception:  # the views matter more than any one helper thread
                    log.exception("%s did not start", type(service).__name__)
            if self._sizes is not None:
                try:
                    self._sizes.attach()
                except Exception:  # sendfile may come back short; every other read is whole
                    log.exception("cannot keep the views' sizes for sendfile")
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, unmasked)
        self.served = True
        log.info("serving %s (cgroup %s)", ", ".join(sorted(self._fs.views())), self._fs.hierarchies.layout.value)

    def destroy(self, path: Any) -> None:
        for service in self._services:
            service.stop()

    @_errors_to_errno
    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        if self._fs.is_dir(path):
            return {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2, **self._times}
        # Not 0 like procfs: sendfile and splice read through the page cache, up to the size.
        return {
            "st_mode": stat.S_IFREG | self._fs.file_mode(path),
            "st_nlink": 1,
            "st_size": self._fs.size(path),
            **self._times,
        }

    @_errors_to_errno
    def readdir(self, path: str, fh: int) -> list[str | tuple[str, int, int]]:
        # Overlaid directories list what the reader's container is shown (its cpuN).  Each
        # entry carries its type: glibc before 2.35 counts CPUs by DT_DIR entries.
        entries: list[str | tuple[str, int, int]] = [".", ".."]
        for name in self._fs.listdir(path, mfusepy.fuse_get_context()[2]):
            try:
                kind = stat.S_IFDIR if self._fs.is_dir(f"{path.rstrip('/')}/{name}") else stat.S_IFREG
            except NotFound:
                continue  # gone since the listing
            entries.append((name, kind, 0))
        return entries

    @_errors_to_errno
    def open(self, path: str, flags: int) -> int:
        handle = self._fs.open(path, mfusepy.fuse_get_context()[2])
        if self._sizes is not None:
            self._sizes.restore(path)
            self._sizes.drop_pages(path)
        return handle

    @_errors_to_errno
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        if self._sizes is not None:
            self._sizes.read_pages(path, size, offset)
        return self._fs.read(fh, size, offset, mfusepy.fuse_get_context()[2])

    @_errors_to_errno
    def release(self, path: str, fh: int) -> int:
        self._fs.release(fh)
        if self._sizes is not None:
            self._sizes.restore(path)
        return 0


class Service(Protocol):
    """A thread that may start only once the filesystem serves (and, daemonized, has forked)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def serve(fs: ContainerFS, mountpoint: str, foreground: bool, services: Sequence[Service] = ()) -> None:
    """Mount and serve until unmounted or signalled (SIGTERM, SIGINT); raise if mounting failed."""
    adapter = FuseAdapter(fs, services, mountpoint)
    try:
        _run(adapter, mountpoint, foreground)
    except RuntimeError:
        # libfuse's main returns non-zero when a signal ended the loop; after the
        # filesystem was served and torn down that is the normal way to stop.
        if not adapter.served:
            raise
    log.info("unmounted %s", mountpoint)


def _run(adapter: FuseAdapter, mountpoint: str, foreground: bool) -> None:
    mfusepy.FUSE(
        adapter,
        mountpoint,
        foreground=foreground,
        # Python callbacks serialize on the GIL: libfuse's multi-threaded loop served
        # concurrent readers slower than this single thread (bench_reads.py, README).
        nothreads=True,
        ro=True,
        allow_other=True,
        default_permissions=True,
        fsname=mount_source(mountpoint),
        subtype="containerfs",
    )


def libfuse_version() -> str:
    """The loaded libfuse's version, e.g. "3.14.0" (fuse_pkgversion exists since 3.0)."""
    try:
        pkgversion = mfusepy._libfuse.fuse_pkgversion
    except AttributeError:
        return f"{mfusepy.fuse_version_major}.{mfusepy.fuse_version_minor}"
    pkgversion.restype = ctypes.c_char_p
    return str(pkgversion().decode())
