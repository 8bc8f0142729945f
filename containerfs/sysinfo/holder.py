"""The holder: owns every seccomp listener descriptor, so a daemon crash never breaks sysinfo.

Once the last copy of a listener descriptor is closed, the kernel fails every later
notified call with ENOSYS: busybox free would fail in every container.  The FUSE daemon
is large, and may be killed or upgraded; this process is small (the standard library
and containerfs.sysinfo.abi), started by the daemon in its own session, and outlives it.

- It listens on the linux.seccomp.listenerPath socket: runc and crun connect after
  creating a container (and after each `exec`) and send the listener with SCM_RIGHTS.
- For each notification it asks the daemon (the answers socket, a short timeout) for
  the caller's 112-byte struct, writes it into the caller with process_vm_writev between
  two NOTIF_ID_VALID checks, and replies 0.
- Anything else (daemon gone or slow, a host process, a 32-bit caller, a bad buffer, the
  caller gone) gets SECCOMP_USER_NOTIF_FLAG_CONTINUE: the kernel's own sysinfo runs.
  So no container ever waits longer than the timeout, and no call ever fails.
- A restarted daemon binds the answers socket again and finds this holder by its pid
  file: nothing to hand over.  A listener is closed when the kernel reports POLLHUP
  (every process of its filter is gone).  With no listener left and no daemon for
  --idle-exit seconds the holder exits; at once when a daemon that stops cleanly
  tells it so (SIGUSR1).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import select
import signal
import socket
import stat
import struct
import sys
import time

from containerfs.sysinfo import abi

log = logging.getLogger("containerfs.sysinfo.holder")

ASK_TIMEOUT_SECONDS = 0.5
# With no listener there is nothing to keep: a daemon started later starts a new holder.
# containerfs-runtime adds the rule only while a daemon serves, so none is on its way.
IDLE_EXIT_SECONDS = 3.0
_REQUEST = struct.Struct("<I")
# Enough for the OCI state JSON a runtime sends with the descriptor.
_STATE_BYTES = 1 << 20


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.process_vm_writev.argtypes = [
    ctypes.c_int,
    ctypes.POINTER(_Iovec),
    ctypes.c_ulong,
    ctypes.POINTER(_Iovec),
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_libc.process_vm_writev.restype = ctypes.c_ssize_t


def write_into(pid: int, address: int, data: bytes) -> bool:
    """Copy data to address in process pid; False unless every byte arrived."""
    buffer = ctypes.create_string_buffer(data, len(data))
    local = _Iovec(ctypes.cast(buffer, ctypes.c_void_p), len(data))
    remote = _Iovec(address, len(data))
    return int(_libc.process_vm_writev(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)) == len(data)


def ask_daemon(path: str, pid: int, timeout: float = ASK_TIMEOUT_SECONDS) -> bytes | None:
    """The daemon's struct for host pid, or None (no daemon, no answer in time, not a container)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(_REQUEST.pack(pid))
            data = b""
            while len(data) < abi.SYSINFO_SIZE:
                chunk = sock.recv(abi.SYSINFO_SIZE - len(data))
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return data if len(data) == abi.SYSINFO_SIZE else None


def _id_valid(fd: int, notif_id: int) -> bool:
    try:
        fcntl.ioctl(fd, abi.NOTIF_ID_VALID, abi.pack_id(notif_id))
    except OSError:
        return False
    return True


def _send(fd: int, response: bytes) -> None:
    try:
        fcntl.ioctl(fd, abi.NOTIF_SEND, response)
    except OSError as err:
        # ENOENT: the caller is gone (killed while waiting); nothing is left to answer.
        if err.errno != errno.ENOENT:
            log.warning("answering a notification failed: %s", err)


def handle(fd: int, answers: str) -> None:
    """Receive one notification on listener fd and answer it."""
    buf = bytearray(abi.NOTIF_SIZE)  # NOTIF_RECV wants a zeroed struct
    try:
        fcntl.ioctl(fd, abi.NOTIF_RECV, buf)
    except OSError as err:
        # ENOENT: the caller was interrupted before we received it.
        if err.errno not in (errno.ENOENT, errno.EINTR):
            log.warning("receiving a notification failed: %s", err)
        return
    notif = abi.parse_notification(bytes(buf))
    cont = abi.pack_response(notif.id, flags=abi.FLAG_CONTINUE)
    if not notif.is_native_sysinfo():
        _send(fd, cont)
        return
    answer = ask_daemon(answers, notif.pid)
    # The id is checked before and after the write: pid may name another process if
    # the caller died and its pid was reused while we waited for the daemon.
    if answer is None or not _id_valid(fd, notif.id) or not write_into(notif.pid, notif.args[0], answer):
        _send(fd, cont)  # a bad buffer too: the kernel's call then says EFAULT itself
        return
    if _id_valid(fd, notif.id):
        _send(fd, abi.pack_response(notif.id, val=0))


def is_listener(fd: int) -> bool:
    """Whether fd is a seccomp listener: only a listener answers NOTIF_ID_VALID with ENOENT."""
    try:
        fcntl.ioctl(fd, abi.NOTIF_ID_VALID, abi.pack_id(0))
    except OSError as err:
        return err.errno == errno.ENOENT
    return False  # no notification has id 0: whatever answered yes is not a listener


def receive_listeners(conn: socket.socket) -> list[int]:
    """The seccomp listeners a runtime sent on conn; anything else it sent is closed."""
    conn.settimeout(2.0)
    fds: list[int] = []
    try:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, _STATE_BYTES, 4)
    except OSError as err:
        log.warning("reading a runtime's message failed: %s", err)
    keep = []
    for fd in fds:
        if is_listener(fd):
            keep.append(fd)
        else:
            os.close(fd)
    return keep


class Holder:
    def __init__(self, listener_path: str, answers: str, pidfile: str, idle_exit: float) -> None:
        self.listener_path = listener_path
        self.answers = answers
        self.pidfile = pidfile
        self.idle_exit = idle_exit
        self.listeners: set[int] = set()
        self._stopping = False
        self._dismissed = False  # the daemon stopped cleanly (SIGUSR1)

    def _bind(self) -> socket.socket:
        directory = os.path.dirname(self.listener_path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # runtimes run as root; nobody else may send us descriptors
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.listener_path).st_mode):
                os.unlink(self.listener_path)  # left by a holder that was killed
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.bind(self.listener_path)
        os.chmod(self.listener_path, 0o600)
        sock.listen(64)
        return sock

    def _daemon_reachable(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(ASK_TIMEOUT_SECONDS)
            try:
                sock.connect(self.answers)
            except OSError:
                return False
        return True

    def run(self) -> int:
        server = self._bind()
        inode = os.stat(self.listener_path).st_ino
        tmp = self.pidfile + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, self.pidfile)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "_stopping", True))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "_dismissed", True))
        poller = select.poll()
        poller.register(server.fileno(), select.POLLIN)
        # A signal wakes the poll at once (its handler alone would run only after the poll).
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        poller.register(wake_r, select.POLLIN)
        lonely_since: float | None = None
        log.info("holding sysinfo listeners at %s", self.listener_path)
        try:
            while not self._stopping:
                try:
                    events = poller.poll(1000)
                except InterruptedError:
                    continue
                for fd, mask in events:
                    if fd == wake_r:
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 512)
                    elif fd == server.fileno():
                        self._accept(server, poller)
                    elif mask & select.POLLIN:
                        handle(fd, self.answers)
                    elif mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                        # Every task of this filter has exited: no call can arrive any more.
                        poller.unregister(fd)
                        self.listeners.discard(fd)
                        os.close(fd)
                if self._dismissed and not self.listeners:
                    break
                self._dismissed = False  # with listeners we stay: they outlive the daemon
                if self.listeners or self._daemon_reachable():
                    lonely_since = None
                elif lonely_since is None:
                    lonely_since = time.monotonic()
                elif time.monotonic() - lonely_since >= self.idle_exit:
                    log.info("no listener and no daemon for %g s: exiting", self.idle_exit)
                    break
        finally:
            server.close()
            with contextlib.suppress(OSError):
                if os.stat(self.listener_path).st_ino == inode:
                    os.unlink(self.listener_path)
            with contextlib.suppress(OSError, ValueError), open(self.pidfile) as f:
                if int(f.read()) == os.getpid():
                    os.unlink(self.pidfile)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.listener_path))  # only when empty
        return 0

    def _accept(self, server: socket.socket, poller: select.poll) -> None:
        try:
            conn, _ = server.accept()
        except OSError as err:
            log.warning("accept failed: %s", err)
            return
        with conn:
            for fd in receive_listeners(conn):
                self.listeners.add(fd)
                poller.register(fd, select.POLLIN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="containerfs-sysinfo-holder")
    parser.add_argument("--listener", required=True, help="the listenerPath socket to bind")
    parser.add_argument("--answers", required=True, help="the daemon's answers socket")
    parser.add_argument("--pidfile", required=True)
    parser.add_argument(
        "--idle-exit", type=float, default=IDLE_EXIT_SECONDS, help="seconds without listener and daemon"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sysinfo-holder[%(process)d] %(message)s")
    # The daemon starts us from a thread that blocks its stop signals: undo that.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    # Neither the daemon's signals nor its terminal: a killed daemon must not take us along.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        return Holder(args.listener, args.answers, args.pidfile, args.idle_exit).run()
    except OSError as err:
        print(f"containerfs-sysinfo-holder: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
