"""The daemon's control socket: one JSON request and one JSON answer per connection.

A unix stream socket per mountpoint in the run directory (`--run-dir`, /run/containerfs:
directory 0700, socket 0600, both root's), so only root on the host can reach it:
containers must not learn about other containers.  The daemon also checks the peer
(SO_PEERCRED): root, and in the host's pid namespace.  Clients are served concurrently,
a thread each up to a small cap (beyond it a client is told the daemon is busy), each
with a deadline for its whole request, a size limit and a JSON nesting limit: no idle,
slow or malicious client delays another, the FUSE loop or the daemon's life.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

from containerfs.daemon.runfiles import escape_path
from containerfs.host import roots
from containerfs.host.proc import ProcFS

log = logging.getLogger(__name__)

_MAX_REQUEST = 65536
# Requests are flat objects; deeper nesting is refused before parsing (Python's parser
# recurses, and a deep enough document raises RecursionError).
_MAX_DEPTH = 16
_MAX_CLIENTS = 8
# sun_path holds 108 bytes with the terminating NUL.
_MAX_SOCKET_PATH = 107

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def socket_path(mountpoint: str, directory: str) -> str:
    """The control socket of the daemon at mountpoint, in the run directory (`--run-dir`)."""
    name = escape_path(os.path.abspath(mountpoint))
    path = os.path.join(directory, name + ".sock")
    if len(path.encode()) <= _MAX_SOCKET_PATH:
        return path
    # Too long for a socket address: a readable head made unique with a hash, else the hash.
    digest = hashlib.sha256(os.path.abspath(mountpoint).encode()).hexdigest()[:16]
    for candidate in (f"{name[:32]}-{digest}", digest):
        path = os.path.join(directory, candidate + ".sock")
        if len(path.encode()) <= _MAX_SOCKET_PATH:
            return path
    raise ValueError(f"run directory {directory} is too long for a socket address; choose a shorter --run-dir")


class ControlError(Exception):
    """The client could not get an answer; the message is one line for the user."""


class NoDaemon(ControlError):
    pass


def request(path: str, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send message to the daemon listening at path and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except FileNotFoundError as err:
            raise NoDaemon(f"no control socket {path}") from err
        except ConnectionRefusedError as err:
            raise NoDaemon(f"nothing listens on {path} (left by a daemon that died)") from err
        except PermissionError as err:
            raise ControlError(f"cannot reach the daemon: {err.strerror} (status needs root)") from err
        except OSError as err:
            raise ControlError(f"cannot reach the daemon at {path}: {err.strerror or err}") from err
        try:
            # The daemon may answer before reading (busy, refused): then read why.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(json.dumps(message).encode() + b"\n")
            data = _read_all(sock)
        except socket.timeout as err:
            raise ControlError(f"the daemon did not answer within {timeout:g} s") from err
        except OSError as err:
            raise ControlError(f"the daemon closed the connection: {err.strerror or err}") from err
    try:
        answer = json.loads(data)
    except ValueError as err:
        raise ControlError("the daemon's answer is not JSON") from err
    if not isinstance(answer, dict):
        raise ControlError("the daemon's answer is not a JSON object")
    if not answer.get("ok"):
        raise ControlError(f"the daemon refused: {answer.get('error', 'no reason given')}")
    return answer


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text (outside strings)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


class ControlServer:
    """Serves handler's answers on a unix socket from a daemon thread (a service of the adapter)."""

    def __init__(
        self,
        path: str,
        handler: Handler,
        *,
        peer_uid: int = 0,
        proc_root: str = roots.PROC_ROOT,
        timeout: float = 5.0,
    ) -> None:
        self.path = path
        self.handler = handler
        self.peer_uid = peer_uid
        # The real /proc, not the views' injected root: it judges real peers.
        self.proc_root = proc_root
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._host_pidns = ""
        self._slots = threading.BoundedSemaphore(_MAX_CLIENTS)

    def start(self) -> None:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # also when it existed with wider permissions
        try:
            # A socket left by a killed daemon; mount refuses a mountpoint a live one serves.
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(self.path)
            os.chmod(self.path, 0o600)
            sock.listen(8)
        except OSError:
            sock.close()
            raise
        self._inode = os.stat(self.path).st_ino
        self._sock = sock
        self._host_pidns = ProcFS(self.proc_root).self_process().ns("pid")
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes accept()
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)
        try:
            # Only our own socket: never one a newer daemon bound at the same path.
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError as err:
                if self._stopping.is_set() or err.errno in (errno.EBADF, errno.EINVAL):
                    return
                log.warning("control socket: accept failed: %s", err)
                continue
            if not self._slots.acquire(blocking=False):
                with conn:
                    self._send(conn, {"ok": False, "error": "busy: too many clients at once, try again"})
                    # Closing with its request unread would reset the connection before
                    # the client reads why: take what has arrived, briefly.
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_WR)
                        conn.settimeout(0.1)
                        while conn.recv(65536):
                            pass
                continue
            threading.Thread(target=self._client, args=(conn,), name="control-client", daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._answer(conn)
        except Exception:  # no client may take the daemon or this thread down
            log.exception("control socket: request failed")
        finally:
            self._slots.release()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(self.timeout)
        refusal = self._refusal(conn)
        if refusal is not None:
            log.warning("control socket: %s", refusal)
        try:
            # Read the request even from a refused peer: closing with unread input resets
            # the connection and the peer would never see why it was refused.
            message = self._receive(conn, time.monotonic() + self.timeout)
        except (OSError, ValueError, RecursionError) as err:
            self._send(conn, {"ok": False, "error": refusal or f"bad request: {err}"})
            return
        if refusal is not None:
            self._send(conn, {"ok": False, "error": refusal})
            return
        try:
            answer = self.handler(message)
        except Exception as err:  # a bug answering one request must not end the service
            log.exception("control socket: answering %r failed", message.get("request"))
            answer = {"ok": False, "error": f"internal error: {type(err).__name__}: {err}"}
        self._send(conn, answer)

    def _refusal(self, conn: socket.socket) -> str | None:
        pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if uid != self.peer_uid:
            return f"permission denied: peer pid {pid} runs as uid {uid}"
        try:
            pidns = ProcFS(self.proc_root).process(pid).ns("pid")
        except OSError:  # gone (ProcessGone) or hidden
            return f"permission denied: peer pid {pid} cannot be checked"
        if pidns != self._host_pidns:
            return f"permission denied: peer pid {pid} is not in the host's pid namespace"
        return None

    @staticmethod
    def _receive(conn: socket.socket, deadline: float) -> dict[str, Any]:
        data = b""
        while not data.endswith(b"\n"):
            # One deadline for the whole request: a client dripping a byte at a time
            # does not get a fresh timeout per byte.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("request not complete in time")
            conn.settimeout(remaining)
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
            if len(data) > _MAX_REQUEST:
                raise ValueError("request too long")
        if _depth(data) > _MAX_DEPTH:
            raise ValueError(f"request nested deeper than {_MAX_DEPTH}")
        message = json.loads(data)
        if not isinstance(message, dict):
            raise ValueError("not a JSON object")
        return message

    @staticmethod
    def _send(conn: socket.socket, answer: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # a client that went away: its loss
            conn.sendall(json.dumps(answer).encode() + b"\n")
