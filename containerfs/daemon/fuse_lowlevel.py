"""The FUSE adapter: libfuse 3 mounts, a Python loop speaks the kernel's protocol.

Every read costs kernel round trips, and each one that reaches Python through a binding
pays for the binding's layers (argument conversion, path lookup, context calls).  Here
libfuse only creates the session and mounts (fuse_session_new, fuse_session_mount, and
unmounts at the end); the loop reads each request from the session's /dev/fuse
descriptor into one buffer and writes each reply with one write: two system calls per
request and nothing in between but struct unpacking and the core's answer.

The tree never changes, so its nodes are numbered once (the root is 1), and entries,
attributes and negative lookups are cached by the kernel for a day.  A read is OPEN,
READ, READ at EOF and RELEASE: FOPEN_NOFLUSH and an ENOSYS to the first FLUSH spare the
flushes, ENOSYS to the first INTERRUPT stops interrupts (each request is answered before
the next is read, so there is never one to interrupt).  An open file's content lives in
its handle in the core (seq_file semantics).  Page-cache readers (sendfile, splice,
mmap) depend on the inode's size, which the loop keeps right (see _prepare_pages).  Errors
map to errno in one place, _reply_to.
Writes never arrive: the mount is read-only, so the kernel refuses them with EROFS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import queue
import signal
import stat
import struct
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NamedTuple, Protocol

from containerfs.daemon.core import ContainerFS
from containerfs.daemon.errors import IsADirectory, NotFound, ReadFailed
from containerfs.host.mounttable import mount_source

log = logging.getLogger(__name__)

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
# The kernel asks again only when these expire; nothing in the tree ever changes.
TREE_TIMEOUT_SECONDS = 86400
_ERRNO: dict[type[Exception], int] = {NotFound: errno.ENOENT, IsADirectory: errno.EISDIR, ReadFailed: errno.EIO}
_CORE_ERRORS = tuple(_ERRNO)

# Opcodes and flags of <linux/fuse.h> (protocol 7.x).
LOOKUP, FORGET, GETATTR, OPEN, READ, STATFS, RELEASE, FLUSH, INIT = 1, 2, 3, 14, 15, 17, 18, 25, 26
OPENDIR, READDIR, RELEASEDIR, INTERRUPT, DESTROY, BATCH_FORGET = 27, 28, 29, 36, 38, 42
NOTIFY_INVAL_INODE, NOTIFY_STORE = 2, 4
FOPEN_DIRECT_IO, FOPEN_NOFLUSH = 1 << 0, 1 << 5
READ_LOCKOWNER = 1 << 1  # set on every direct-I/O READ, never on a page-cache one
KERNEL_MAJOR, KERNEL_MINOR = 7, 31
COMPAT_22_INIT_OUT_SIZE = 24  # the init reply kernels before 7.23 expect
ROOT = 1
DT_DIR, DT_REG = 4, 8

_IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, extlen, pad
_OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
_INIT_IN = struct.Struct("<IIII")  # major, minor, max_readahead, flags
_INIT_OUT = struct.Struct("<IIIIHHIIHHI28x")  # ... max_write, time_gran, max_pages, map_alignment, flags2
_ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # ino, size, blocks, a/m/ctime, their nsec, mode, nlink, ...
_ENTRY_OUT = struct.Struct("<QQQQII")  # nodeid, generation, entry_valid, attr_valid, their nsec
_ATTR_OUT = struct.Struct("<QII")  # attr_valid, attr_valid_nsec, dummy
_OPEN_OUT = struct.Struct("<QII")  # fh, open_flags, padding
_FH = struct.Struct("<Q")  # the first field of open_in's successors: release_in, read_in, ...
_READ_IN = struct.Struct("<QQII")  # fh, offset, size, read_flags
_DIRENT = struct.Struct("<QQII")  # ino, next offset, namelen, type
_NOTIFY_STORE = struct.Struct("<IiQQQII")  # out header, nodeid, offset, size, padding
_NOTIFY_INVAL_INODE = struct.Struct("<IiQQqq")  # out header, nodeid, offset, length (0: every page)
_STATFS_OUT = struct.Struct("<QQQQQIII28x")  # blocks, bfree, bavail, files, ffree, bsize, namelen, frsize

# A request is read whole into one buffer: the largest the kernel may send (libfuse's size).
_BUFFER_SIZE = 256 * 4096 + 4096


class _Reply(Exception):
    """An error answer: errno for the request being handled."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Stop(BaseException):
    """A signal or the kernel ended the session."""


class Service(Protocol):
    """A thread that may start only once the filesystem serves (and, daemonized, has forked)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Node(NamedTuple):
    path: str  # "" for the root
    is_dir: bool
    parent: int  # the parent directory's node id (the root's own for the root)


class LowLevelAdapter:
    """Answers the kernel's requests from the core; one thread, one request at a time."""

    def __init__(self, fs: ContainerFS, services: Sequence[Service] = ()) -> None:
        self._fs = fs
        self._services = [fs.sampler, *services]
        # Node ids are handed out at LOOKUP and READDIR, one per path and kind, never reused:
        # the core's tree decides what exists, the ids only name it for the kernel.
        self._nodes = [Node("", True, ROOT)]
        self._ids = {("", True): ROOT}
        self._fd = -1
        self._waiting = False  # in the blocking read, where a signal may end the loop at once
        self._stopping = False
        self._told: dict[int, int] = {}  # node id -> the size the kernel was last given
        self._cached: set[int] = set()  # nodes a page-cache read may have left pages of
        self._resize: set[int] = set()  # nodes whose inode size may be wrong (see _prepare_pages)
        self._notices: queue.SimpleQueue[list[bytes]] = queue.SimpleQueue()
        self._notifier: threading.Thread | None = None
        self._open_files: dict[int, int] = {}  # node id -> files open on it
        self.served = False
        self._seconds = int(time.time())
        self._handlers: dict[int, Callable[[int, int, memoryview], bytes | None]] = {
            LOOKUP: self._lookup,
            GETATTR: self._getattr,
            OPEN: self._open,
            READ: self._read,
            RELEASE: self._release,
            OPENDIR: self._opendir,
            READDIR: self._readdir,
            RELEASEDIR: self._empty,
            STATFS: self._statfs,
            INIT: self._init,
            DESTROY: self._destroy,
        }

    def _child(self, parent: int, name: str) -> int:
        """The node id of name in directory parent, or 0 if the core has no such entry."""
        directory = self._nodes[parent - 1]
        if not directory.is_dir or not name or "/" in name or name in (".", ".."):
            return 0
        path = f"{directory.path}/{name}" if directory.path else name
        try:
            is_dir = self._fs.is_dir(path)
        except NotFound:
            return 0
        nodeid = self._ids.get((path, is_dir))
        if nodeid is None:
            self._nodes.append(Node(path, is_dir, parent))
            nodeid = self._ids[(path, is_dir)] = len(self._nodes)
        return nodeid

    # -- the loop --------------------------------------------------------------------

    def serve(self, fd: int) -> None:
        """Answer requests on fd until the kernel ends the session or a signal arrives."""
        self._fd = fd
        buffer = bytearray(_BUFFER_SIZE)
        view = memoryview(buffer)
        readv, write, unpack, handlers = os.readv, os.write, _IN_HEADER.unpack_from, self._handlers
        header = _OUT_HEADER.pack
        try:
            while not self._stopping:
                self._waiting = True
                try:
                    length = readv(fd, [buffer])
                except OSError as err:
                    if err.errno == errno.ENODEV:  # unmounted
                        return
                    if err.errno in (errno.ENOENT, errno.EAGAIN):  # interrupted before we read it
                        continue
                    raise
                finally:
                    self._waiting = False
                if length < _IN_HEADER.size:
                    if not length:  # the other end is closed (never so for /dev/fuse)
                        return
                    log.error("a %d-byte FUSE request, shorter than its header: ignored", length)
                    continue
                _, opcode, unique, nodeid, _, _, pid, _, _ = unpack(buffer)
                handler = handlers.get(opcode)
                try:
                    if handler is None:
                        if opcode in (FORGET, BATCH_FORGET):
                            continue  # the tree's nodes live as long as the mount
                        raise _Reply(errno.ENOSYS)  # the kernel stops sending most of these
                    payload = handler(nodeid, pid, view[_IN_HEADER.size : length])
                    if payload is None:
                        continue
                    reply = header(16 + len(payload), 0, unique) + payload
                except Exception as err:
                    reply = header(16, -self._reply_to(opcode, err), unique)
                try:
                    write(fd, reply)
                except OSError as err:
                    # ENOENT: the request was interrupted and is gone; the next one waits.
                    if err.errno != errno.ENOENT:
                        self._refused(fd, opcode, unique, err)
        except Stop:
            return

    def _refused(self, fd: int, opcode: int, unique: int, err: OSError) -> None:
        """The kernel refused a reply: answer EIO instead, so that no reader waits forever."""
        self._fs.stats.error()
        log.error("the kernel refused the reply to FUSE opcode %d: %s", opcode, err)
        try:
            os.write(fd, _OUT_HEADER.pack(16, -errno.EIO, unique))
        except OSError as again:
            log.error("the kernel refused the EIO reply to FUSE opcode %d too: %s", opcode, again)

    def _reply_to(self, opcode: int, err: Exception) -> int:
        """The errno for a request that raised err."""
        if isinstance(err, _Reply):
            return err.code
        for kind, code in _ERRNO.items():
            if isinstance(err, kind):
                return code
        self._fs.stats.error()
        log.error("FUSE opcode %d failed", opcode, exc_info=err)
        return errno.EIO

    def signalled(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        if self._waiting:  # else the loop stops after the request in hand
            raise Stop

    # -- requests --------------------------------------------------------------------

    def _init(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        major, minor, max_readahead, _flags = _INIT_IN.unpack_from(body)
        if major < KERNEL_MAJOR:
            raise _Reply(errno.EPROTO)
        if major > KERNEL_MAJOR:  # the kernel then asks again with ours
            return struct.pack("<II", KERNEL_MAJOR, KERNEL_MINOR) + bytes(_INIT_OUT.size - 8)
        # Threads start here, after libfuse has daemonized (fork keeps only one thread).
        # They inherit a mask without the stop signals: SIGTERM must land on this thread,
        # the loop's, to interrupt its read of /dev/fuse.
        unmasked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            for service in self._services:
                try:
                    service.start()
                except Exception:  # the views matter more than any one helper thread
                    log.exception("%s did not start", type(service).__name__)
            self._notifier = threading.Thread(target=self._notify, name="fuse-notifier", daemon=True)
            self._notifier.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, unmasked)
        self.served = True
        log.info("serving %s (cgroup %s)", ", ".join(sorted(self._fs.views())), self._fs.hierarchies.layout.value)
        reply = _INIT_OUT.pack(KERNEL_MAJOR, min(minor, KERNEL_MINOR), max_readahead, 0, 16, 12, 4096, 1, 0, 0, 0)
        return reply if minor >= 23 else reply[:COMPAT_22_INIT_OUT_SIZE]

    def _destroy(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        self._stopping = True
        return b""

    def _attr(self, nodeid: int) -> bytes:
        node = self._nodes[nodeid - 1]
        if node.is_dir:
            mode, nlink, size = stat.S_IFDIR | 0o555, 2, 0
        else:
            # Not 0 like procfs: sendfile and splice read through the page cache, up to the size.
            mode, nlink, size = stat.S_IFREG | self._fs.file_mode(node.path), 1, self._fs.size(node.path)
            self._told[nodeid] = size
        t = self._seconds
        return _ATTR.pack(nodeid, size, (size + 511) // 512, t, t, t, 0, 0, 0, mode, nlink, 0, 0, 0, 4096, 0)

    def _node(self, nodeid: int) -> Node:
        if not 0 < nodeid <= len(self._nodes):
            raise _Reply(errno.ENOENT)
        return self._nodes[nodeid - 1]

    def _lookup(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        self._node(nodeid)
        child = self._child(nodeid, bytes(body[:-1]).decode(errors="surrogateescape"))  # ends with a NUL
        # Node 0 with a timeout: the kernel remembers that the name does not exist.
        attr = self._attr(child) if child else bytes(_ATTR.size)
        return _ENTRY_OUT.pack(child, 0, TREE_TIMEOUT_SECONDS, TREE_TIMEOUT_SECONDS, 0, 0) + attr

    def _getattr(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        node = self._node(nodeid)
        if node.path and self._fs.is_dir(node.path) != node.is_dir:  # NotFound: gone from the tree
            raise _Reply(errno.ENOENT)
        return _ATTR_OUT.pack(TREE_TIMEOUT_SECONDS, 0, 0) + self._attr(nodeid)

    def _open(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        handle = self._fs.open(self._node(nodeid).path, pid)
        others = self._open_files.get(nodeid, 0)
        if nodeid in self._cached:
            self._prepare_pages(nodeid, alone=not others)
        self._open_files[nodeid] = others + 1
        # Direct I/O: every read comes here (no page cache), so each reader gets its own.
        return _OPEN_OUT.pack(handle, FOPEN_DIRECT_IO | FOPEN_NOFLUSH, 0)

    def _read(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        handle, offset, size, flags = _READ_IN.unpack_from(body)
        content = self._fs.read(handle, size, offset, pid)
        if not flags & READ_LOCKOWNER:
            self._cached.add(nodeid)
            if len(content) < size or self._fs.size(self._nodes[nodeid - 1].path) > self._told.get(nodeid, 0):
                self._resize.add(nodeid)
        return content

    def _release(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        self._fs.release(_FH.unpack_from(body)[0])
        left = self._open_files.pop(nodeid, 1) - 1
        if left > 0:
            self._open_files[nodeid] = left
        return b""

    def _prepare_pages(self, nodeid: int, alone: bool) -> None:
        """Before the opener of a file that page-cache readers used reads: its pages and size.

        sendfile and splice read through the page cache (direct I/O does not apply to
        them), which every open of the file shares and which the kernel keeps across
        opens: one container's sendfile would be served the pages another's filled.  So
        the OPEN after a page-cache READ drops the file's pages (FUSE_NOTIFY_INVAL_INODE).
        The kernel also shrinks the inode's size to wherever such a read came back short,
        and then cuts every longer content there (busybox cat never stats): the OPEN
        after a short one sets the size back with FUSE_NOTIFY_STORE, one byte at the
        view's size - 1, on a page beyond any content (the size is twice the largest),
        but only when no other file is open on the node, since that makes the kernel
        ignore the shrink of a read in flight, whose reader would read on past its
        content; otherwise an empty store marks the size stale, for the next stat to ask,
        and the node stays marked.  Both wait for pages locked by reads in flight, which
        this loop answers.  With no other file open on the node nothing is locked, and the
        loop sends them itself before it answers the OPEN; with others open a helper
        thread sends them while the loop goes on answering their reads (never a deadlock
        nor a stall; under such contention the opener may still meet a page filled for
        another reader).  Direct-I/O reads never mark a node.
        """
        self._cached.discard(nodeid)
        notices = [_NOTIFY_INVAL_INODE.pack(_NOTIFY_INVAL_INODE.size, NOTIFY_INVAL_INODE, 0, nodeid, 0, 0)]
        if nodeid in self._resize:
            size = self._fs.size(self._nodes[nodeid - 1].path)
            if alone:
                self._resize.discard(nodeid)
                self._told[nodeid] = size
                notices.append(
                    _NOTIFY_STORE.pack(_NOTIFY_STORE.size + 1, NOTIFY_STORE, 0, nodeid, size - 1, 1, 0) + b"\0"
                )
            else:
                notices.append(_NOTIFY_STORE.pack(_NOTIFY_STORE.size, NOTIFY_STORE, 0, nodeid, size, 0, 0))
        if alone:  # nothing is locked: the loop sends them itself, before its reply
            self._send_notices(notices)
            return
        # Pages may be locked by reads in flight, which only this loop can end.
        if self._notifier is None:  # not served yet (INIT starts it)
            self._send_notices(notices)
            return
        self._notices.put(notices)

    def _notify(self) -> None:
        while True:
            self._send_notices(self._notices.get())

    def _send_notices(self, notices: list[bytes]) -> None:
        try:
            for notice in notices:
                os.write(self._fd, notice)
        except OSError as err:
            if err.errno != errno.ENOENT:  # ENOENT: the kernel has no inode for it now
                log.warning("a FUSE notification failed: %s", err)

    def _opendir(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        if not self._node(nodeid).is_dir:
            raise _Reply(errno.ENOTDIR)
        return _OPEN_OUT.pack(0, 0, 0)

    def _readdir(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        _, offset, size, _ = _READ_IN.unpack_from(body)
        node = self._node(nodeid)
        entries = [(b".", nodeid, DT_DIR), (b"..", node.parent, DT_DIR)]
        # Overlaid directories list what the reader's container is shown (its cpuN).  Each
        # entry carries its type: glibc before 2.35 counts CPUs by DT_DIR entries.
        for child_name in self._fs.listdir(node.path, pid):
            child = self._child(nodeid, child_name)
            if child:  # else gone since the listing
                entries.append((child_name.encode(), child, DT_DIR if self._nodes[child - 1].is_dir else DT_REG))
        out = b""
        for index in range(offset, len(entries)):
            name, ino, kind = entries[index]
            record = _DIRENT.pack(ino, index + 1, len(name), kind) + name
            record += bytes(-len(record) % 8)  # entries are 8-byte aligned
            if len(out) + len(record) > size:
                break
            out += record
        return out

    def _statfs(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        return _STATFS_OUT.pack(0, 0, 0, len(self._nodes), 0, 4096, 255, 4096)

    def _empty(self, nodeid: int, pid: int, body: memoryview) -> bytes:
        return b""

    def stop_services(self) -> None:
        if not self.served:
            return
        for service in self._services:
            service.stop()


# -- libfuse: session, mount, unmount -----------------------------------------------


class _Args(ctypes.Structure):
    _fields_ = [("argc", ctypes.c_int), ("argv", ctypes.POINTER(ctypes.c_char_p)), ("allocated", ctypes.c_int)]


def _libfuse() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("fuse3") or "libfuse3.so.3")
    lib.fuse_session_new.restype = ctypes.c_void_p
    lib.fuse_session_new.argtypes = [ctypes.POINTER(_Args), ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    lib.fuse_session_mount.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.fuse_session_fd.argtypes = [ctypes.c_void_p]
    lib.fuse_session_unmount.argtypes = [ctypes.c_void_p]
    lib.fuse_session_destroy.argtypes = [ctypes.c_void_p]
    lib.fuse_daemonize.argtypes = [ctypes.c_int]
    lib.fuse_pkgversion.restype = ctypes.c_char_p
    return lib


def libfuse_version() -> str:
    """The loaded libfuse's version, e.g. "3.14.0"."""
    return str(_libfuse().fuse_pkgversion().decode())


def serve(fs: ContainerFS, mountpoint: str, foreground: bool, services: Sequence[Service] = ()) -> None:
    """Mount and serve until unmounted or signalled (SIGTERM, SIGINT, SIGHUP); raise if mounting failed."""
    adapter = LowLevelAdapter(fs, services)
    lib = _libfuse()
    options = f"ro,allow_other,default_permissions,fsname={mount_source(mountpoint)},subtype=containerfs"
    argv = (ctypes.c_char_p * 3)(b"containerfs", b"-o", options.encode())
    args = _Args(3, argv, 0)
    # No low-level operations: libfuse never reads a request, the loop above does.
    no_operations = ctypes.create_string_buffer(8)
    session = lib.fuse_session_new(ctypes.byref(args), no_operations, 0, None)
    if not session:
        raise RuntimeError("fuse_session_new failed")
    try:
        if lib.fuse_session_mount(session, mountpoint.encode()) != 0:
            raise RuntimeError(f"fuse_session_mount {mountpoint} failed")
        try:
            if lib.fuse_daemonize(int(foreground)) != 0:
                raise RuntimeError("fuse_daemonize failed")
            previous = {sig: signal.signal(sig, adapter.signalled) for sig in STOP_SIGNALS}
            try:
                adapter.serve(lib.fuse_session_fd(session))
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                adapter.stop_services()
        finally:
            lib.fuse_session_unmount(session)
    finally:
        lib.fuse_session_destroy(session)
    log.info("unmounted %s", mountpoint)
