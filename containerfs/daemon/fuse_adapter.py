"""The thin FUSE adapter: dispatch to the core, map its errors to errno in one place.

Every kernel round trip costs more than computing a small view, so the adapter avoids
the ones it can: long entry/attr/negative timeouts (the tree never changes) and no flush
handler (answered ENOSYS once, then the kernel stops sending it).  A read is then OPEN,
READ, READ at EOF and RELEASE; lxcfs needs seven requests.  No open or release handler
either: libfuse answers those itself, so only the two READs call Python
(benchmarks/bench_reads.py --floor measures what that saves).  Writes never arrive: the
mount is read-only, so the kernel refuses them with EROFS.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import signal
import stat
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

# mfusepy picks libfuse 2 when both are installed unless told; the views need libfuse 3.
os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
import mfusepy

from containerfs.daemon.core import ContainerFS
from containerfs.daemon.errors import IsADirectory, NotFound
from containerfs.host.mounttable import mount_source

log = logging.getLogger(__name__)

_ERRNO = {NotFound: errno.ENOENT, IsADirectory: errno.EISDIR}
_CORE_ERRORS = tuple(_ERRNO)
# The kernel asks again only when these expire.  The tree changes only when a block
# device comes or goes: a new one is looked up by name when listed, a removed one's
# cached entry reads ENOENT.
TREE_TIMEOUT_SECONDS = 86400.0

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


class FuseAdapter:
    """mfusepy calls these methods by FUSE operation name."""

    use_ns = True

    def __init__(self, fs: ContainerFS, services: Sequence[Service] = ()) -> None:
        self._fs = fs
        self._services = [fs.sampler, *services]
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
        # Size 0 like procfs: with direct_io the kernel reads until EOF regardless.
        return {"st_mode": stat.S_IFREG | self._fs.file_mode(path), "st_nlink": 1, "st_size": 0, **self._times}

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
    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self._fs.read(path, size, offset, mfusepy.fuse_get_context()[2])


class Service(Protocol):
    """A thread that may start only once the filesystem serves (and, daemonized, has forked)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def serve(fs: ContainerFS, mountpoint: str, foreground: bool, services: Sequence[Service] = ()) -> None:
    """Mount and serve until unmounted or signalled (SIGTERM, SIGINT); raise if mounting failed."""
    adapter = FuseAdapter(fs, services)
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
