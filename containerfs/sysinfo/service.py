"""The daemon's side: answer the holder's questions, and keep a holder running.

One small thread (a service of the FUSE adapter, like the control socket): it accepts
a connection, reads the caller's host pid (4 bytes), and writes the 112-byte struct, or
nothing when the caller is not in a container or its figures cannot be read: the holder
then lets the kernel's sysinfo run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from containerfs.daemon.core import ContainerFS
from containerfs.daemon.ratelimit import RateLimitedLog
from containerfs.sysinfo.abi import pack_sysinfo
from containerfs.sysinfo.figures import context_for, sysinfo_of
from containerfs.sysinfo.paths import HOLDER_MODULE, SysinfoPaths, holder_pid

log = logging.getLogger(__name__)

_REQUEST = struct.Struct("<I")
# The holder waits 0.5 s for an answer; a client slower than this is not a holder.
_CLIENT_TIMEOUT = 0.5
# How often the thread checks that a holder still runs (and starts one if not).
_SUPERVISE_SECONDS = 5.0


def answer(fs: ContainerFS, pid: int) -> bytes:
    """The struct for host pid, or b"" (the kernel's own answer) for a host process."""
    ctx = context_for(fs, pid)
    if ctx is None:
        return b""
    return pack_sysinfo(sysinfo_of(ctx))


def systemd_unit_argv(paths: SysinfoPaths, env: Mapping[str, str] = os.environ) -> list[str]:
    """Under systemd (the packaged unit), the holder runs as a transient unit of its own.

    A child stays in the daemon's control group, and stopping or restarting the unit
    (KillMode=mixed, Restart=on-failure) kills everything in it: the holder with it.
    """
    if "INVOCATION_ID" not in env or shutil.which("systemd-run") is None:
        return []
    name = "containerfs-sysinfo-" + hashlib.sha256(paths.listener.encode()).hexdigest()[:12]
    return ["systemd-run", "--quiet", "--collect", f"--unit={name}", "--"]


class SysinfoService:
    def __init__(self, fs: ContainerFS, paths: SysinfoPaths, holder: bool = True) -> None:
        self.fs = fs
        self.paths = paths
        self.run_holder = holder  # False: answer only (tests drive the socket themselves)
        self.answered = 0
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._errors = RateLimitedLog(log)
        self._holder: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        try:
            self._start()
        except OSError as err:  # the views matter more than sysinfo: never stop the daemon's start
            log.warning("sysinfo(2) answers unavailable: %s", err)

    def _start(self) -> None:
        os.makedirs(self.paths.directory, mode=0o700, exist_ok=True)
        os.chmod(self.paths.directory, 0o700)  # also when it existed with wider permissions
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.paths.answers).st_mode):
                os.unlink(self.paths.answers)  # left by a daemon that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(self.paths.answers)
            os.chmod(self.paths.answers, 0o600)
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        sock.settimeout(_SUPERVISE_SECONDS)
        self._inode = os.stat(self.paths.answers).st_ino
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="sysinfo", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        # The holder stays: running containers keep their listeners through a restart.
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=_SUPERVISE_SECONDS + 1)
        with contextlib.suppress(OSError):
            if os.stat(self.paths.answers).st_ino == self._inode:
                os.unlink(self.paths.answers)
        self._dismiss_holder()

    def _dismiss_holder(self) -> None:
        """A clean stop leaves nothing behind: a holder without listeners exits now (SIGUSR1)."""
        pid = holder_pid(self.paths)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGUSR1)
            deadline = time.monotonic() + 2.0
            while holder_pid(self.paths) == pid and time.monotonic() < deadline:
                time.sleep(0.02)
        if self._holder is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._holder.wait(timeout=0.1)  # reap it
        with contextlib.suppress(OSError):
            os.rmdir(self.paths.directory)  # only when empty: a holder with listeners stays

    def ensure_holder(self) -> None:
        if not self.run_holder:
            return
        if self._holder is not None and self._holder.poll() is None:
            return
        if holder_pid(self.paths) is not None:
            return  # left running by an earlier daemon: it finds our socket by its path
        argv = [sys.executable, "-m", HOLDER_MODULE, "--listener", self.paths.listener]
        argv += ["--answers", self.paths.answers, "--pidfile", self.paths.pidfile]
        argv = systemd_unit_argv(self.paths) + argv
        # Its own session: signals to the daemon's process group never reach it.  It logs
        # to the daemon's stderr.
        self._holder = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 5.0
        while (pid := holder_pid(self.paths)) is None and time.monotonic() < deadline:
            # systemd-run exits once the unit runs; the holder itself exits only on failure.
            if self._holder.poll() not in (None, 0):
                log.warning("the sysinfo holder exited with %s", self._holder.returncode)
                return
            time.sleep(0.02)
        log.info("started the sysinfo holder (pid %s) at %s", pid, self.paths.listener)

    def _serve(self) -> None:
        assert self._sock is not None
        # Here, not in start(): the daemon's start does not wait for the holder's.
        self._supervise()
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                self._supervise()
                continue
            except OSError as err:
                if self._stopping.is_set() or err.errno in (errno.EBADF, errno.EINVAL):
                    return
                self._errors.warning("accept", "sysinfo socket: accept failed: %s", err)
                continue
            with conn:
                self._answer(conn)

    def _supervise(self) -> None:
        try:
            self.ensure_holder()
        except Exception as err:  # the views matter more than sysinfo
            self._errors.warning("holder", "cannot start the sysinfo holder: %s", err)

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(_CLIENT_TIMEOUT)
        try:
            request = b""
            while len(request) < _REQUEST.size:
                chunk = conn.recv(_REQUEST.size - len(request))
                if not chunk:
                    return  # a liveness probe, or a client that gave up
                request += chunk
            (pid,) = _REQUEST.unpack(request)
            try:
                data = answer(self.fs, pid)
            except Exception as err:  # a caller must never take the daemon down: the kernel answers
                expected = isinstance(err, (OSError, ValueError, LookupError))
                self._errors.warning(
                    f"sysinfo:{type(err).__name__}",
                    "sysinfo for pid %d: %s; the kernel answers",
                    pid,
                    err if expected else repr(err),
                    exc_info=not expected,
                )
                data = b""
            if data:
                self.answered += 1
            conn.sendall(data)
        except OSError as err:
            self._errors.warning("client", "sysinfo socket: %s", err)
