"""The control socket: names, the server's defences, the client's one-line errors."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from containerfs.daemon.control import ControlError, ControlServer, NoDaemon, request, socket_path
from containerfs.daemon.runfiles import escape_path


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/var/lib/containerfs", "var-lib-containerfs"),
        ("/var/lib/containerfs/", "var-lib-containerfs"),
        ("/", "-"),
        ("/srv/my-views", "srv/my\\x2dviews".replace("/", "-")),
        ("/tmp/a b", "tmp-a\\x20b"),
        ("/.hidden/x", "\\x2ehidden-x"),
        ("/mnt/ü", "mnt-\\xc3\\xbc"),
    ],
)
def test_escape_path_like_systemd(path: str, name: str) -> None:
    assert escape_path(path) == name


def test_two_mountpoints_never_share_a_socket(tmp_path: Path) -> None:
    paths = {socket_path(m, str(tmp_path)) for m in ("/a/b", "/a-b", "/a/b-c", "/a-b/c", "/a/b/c")}
    assert len(paths) == 5


@pytest.mark.parametrize("directory", ["/run/containerfs", "/tmp/" + "d" * 80])
def test_long_mountpoints_fit_a_socket_address(directory: str) -> None:
    long_a, long_b = "/srv/" + "x" * 200 + "/a", "/srv/" + "x" * 200 + "/b"
    a, b = socket_path(long_a, directory), socket_path(long_b, directory)
    assert a != b and len(a) <= 107 and len(b) <= 107


def test_a_run_directory_too_long_for_any_socket_is_an_error() -> None:
    with pytest.raises(ValueError, match="too long for a socket address; choose a shorter --run-dir"):
        socket_path("/var/lib/containerfs", "/tmp/" + "d" * 100)


def echo(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("request") == "boom":
        raise RuntimeError("handler bug")
    return {"ok": True, "echo": message}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlServer]:
    srv = ControlServer(str(tmp_path / "run" / "x.sock"), echo, peer_uid=os.getuid(), timeout=0.5)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_round_trip_and_permissions(server: ControlServer) -> None:
    assert request(server.path, {"request": "status"}) == {"ok": True, "echo": {"request": "status"}}
    assert stat.S_IMODE(os.stat(os.path.dirname(server.path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600


def raw(path: str, payload: bytes, shut: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        if payload:
            sock.sendall(payload)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data


@pytest.mark.parametrize(
    ("payload", "shut", "error"),
    [
        (b"not json\n", True, "bad request"),
        (b"[1, 2]\n", True, "not a JSON object"),
        (b"", True, "bad request"),  # connects and says nothing
        (b'{"request": "sta', False, "bad request"),  # half a request, then silence: timeout
        (b'{"request": "boom"}\n', True, "internal error: RuntimeError: handler bug"),
    ],
)
def test_bad_clients_get_an_error_and_the_server_lives_on(
    server: ControlServer, payload: bytes, shut: bool, error: str
) -> None:
    assert error in raw(server.path, payload, shut).decode()
    assert request(server.path, {"request": "after"})["echo"] == {"request": "after"}


def test_a_flood_is_cut_off(server: ControlServer) -> None:
    try:
        answer = raw(server.path, b"x" * 1_000_000)
    except (ConnectionResetError, BrokenPipeError):
        answer = b"too long"  # cut off before it finished sending: also fine
    assert b"too long" in answer
    assert request(server.path, {"request": "after"})["ok"]


def test_a_client_that_vanishes_does_not_stop_the_server(server: ControlServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(server.path)
    assert request(server.path, {"request": "after"})["ok"]


def test_the_wrong_peer_uid_is_refused(tmp_path: Path) -> None:
    srv = ControlServer(str(tmp_path / "y.sock"), echo, peer_uid=os.getuid() + 1)
    srv.start()
    try:
        with pytest.raises(ControlError, match="the daemon refused: permission denied: peer pid"):
            request(srv.path, {"request": "status"})
    finally:
        srv.stop()


def test_stop_removes_the_socket_but_not_a_newer_one(tmp_path: Path) -> None:
    path = str(tmp_path / "z.sock")
    old = ControlServer(path, echo, peer_uid=os.getuid())
    old.start()
    old.stop()
    assert not os.path.exists(path)
    old.start()
    newer = ControlServer(path, echo, peer_uid=os.getuid())
    newer.start()  # replaces the path (as after a crash)
    old.stop()
    assert os.path.exists(path), "stopping must not remove a socket it does not own"
    assert request(path, {"request": "x"})["ok"]
    newer.stop()
    assert not os.path.exists(path)


def test_no_daemon_missing_or_stale_socket(tmp_path: Path) -> None:
    with pytest.raises(NoDaemon):
        request(str(tmp_path / "missing.sock"), {"request": "status"})
    stale = str(tmp_path / "stale.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(stale)
    sock.close()  # a killed daemon leaves the file behind
    with pytest.raises(NoDaemon, match="left by a daemon that died"):
        request(stale, {"request": "status"})


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[ControlServer]:
    """A server with the daemon's real per-client timeout (5 s)."""
    srv = ControlServer(str(tmp_path / "run" / "slow.sock"), echo, peer_uid=os.getuid())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _answered_within(path: str, seconds: float) -> float:
    started = time.monotonic()
    assert request(path, {"request": "status"}, timeout=seconds)["ok"]
    return time.monotonic() - started


def test_an_idle_client_delays_no_one(slow_server: ControlServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as idle:
        idle.connect(slow_server.path)
        time.sleep(0.1)  # accepted and waiting for its request
        assert _answered_within(slow_server.path, 1.0) < 1.0


def test_a_slow_drip_client_is_cut_off_and_delays_no_one(slow_server: ControlServer) -> None:
    stop = threading.Event()
    outcome: list[bytes] = []

    def drip() -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(slow_server.path)
            try:
                for byte in b'{"request": "status"}':
                    sock.sendall(bytes([byte]))
                    if stop.wait(0.3):
                        return
                outcome.append(b"sent all")
            except OSError:
                pass
            outcome.append(sock.recv(4096))

    t = threading.Thread(target=drip)
    t.start()
    try:
        time.sleep(0.2)
        for _ in range(3):
            assert _answered_within(slow_server.path, 1.0) < 1.0
    finally:
        t.join(15)
    # 21 bytes at 0.3 s each take longer than the 5 s deadline for a whole request.
    answer = b"".join(outcome)
    assert b'"ok": false' in answer and b"time" in answer, outcome


def test_deeply_nested_json_gets_an_error_reply(slow_server: ControlServer) -> None:
    for depth in (1000, 20_000):
        payload = b'{"a": ' + b"[" * depth + b"]" * depth + b"}\n"
        answer = raw(slow_server.path, payload, False)
        assert b"nested deeper" in answer, answer[:200]
    # Brackets inside strings are not nesting.
    assert request(slow_server.path, {"request": "[[[[[[[[[[[[[[[[[[[[[[[[[[["})["ok"]
    assert _answered_within(slow_server.path, 1.0) < 1.0


def test_too_many_clients_at_once_are_told_busy(slow_server: ControlServer) -> None:
    idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(8)]
    try:
        for sock in idle:
            sock.connect(slow_server.path)
        time.sleep(0.2)
        with pytest.raises(ControlError, match="busy"):
            request(slow_server.path, {"request": "status"}, timeout=1.0)
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 2
    while True:  # the idle clients' threads notice the close and free their slots
        try:
            assert request(slow_server.path, {"request": "status"}, timeout=1.0)["ok"]
            break
        except ControlError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
