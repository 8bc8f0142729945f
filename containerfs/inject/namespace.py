"""Carry out a plan inside another mount namespace, from a forked single-threaded child.

setns(CLONE_NEWNS) refuses a multi-threaded caller, and the daemon has threads; a child
of fork has one.  The detached mount trees are opened by the parent in its own (host)
namespace, where the daemon's mountpoint is, and the child moves them into place.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import time
from typing import NamedTuple

from containerfs.inject import syscalls
from containerfs.inject.plan import Action, Step

ABSENT = "absent in the container"
CHILD_TIMEOUT_SECONDS = 10.0


class Outcome(NamedTuple):
    step: Step
    done: bool
    error: str = ""  # why not, when not done

    @property
    def result(self) -> str:
        if not self.done:
            return "absent" if self.error == ABSENT else "failed"
        verb = {
            Action.ATTACH: "attached",
            Action.KEEP: "already there",
            Action.REPLACE: "replaced",
            Action.LEAVE: "left to the container's own mount",
        }
        return verb.get(self.step.action, "detached")

    @property
    def failed(self) -> bool:
        # A container without the target (no /sys mounted) simply does not get that view.
        return self.result == "failed"

    @property
    def summary(self) -> str:
        return f"{self.step.target}: {self.error or self.result}"


def _replace(tree_fd: int, target: str) -> None:
    try:
        syscalls.move_mount(tree_fd, target, beneath=True)
    except OSError as err:
        if err.errno != errno.EINVAL:
            raise
        # Before Linux 6.5 there is no MOVE_MOUNT_BENEATH: a moment without the view.
        syscalls.umount_detached(target)
        syscalls.move_mount(tree_fd, target)
        return
    syscalls.umount_detached(target)


def apply_step(step: Step, tree_fd: int | None) -> Outcome:
    if tree_fd is not None and os.path.realpath(step.target) != step.target:
        # Before pivot_root the root is the host's: an image whose /proc is a symlink to
        # an absolute path must not steer a view onto a host path.
        return Outcome(step, False, "reached through a symlink: refused")
    try:
        if step.action is Action.ATTACH:
            if not os.path.exists(step.target):
                return Outcome(step, False, ABSENT)
            assert tree_fd is not None
            syscalls.move_mount(tree_fd, step.target)
        elif step.action is Action.REPLACE:
            assert tree_fd is not None
            _replace(tree_fd, step.target)
        elif step.action is Action.DETACH:
            syscalls.umount_detached(step.target)
    except OSError as err:
        return Outcome(step, False, err.strerror or str(err))
    return Outcome(step, True)


def _read_until_eof(fd: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# Killed children that have not died yet: one blocked in an uninterruptible wait (a FUSE
# request its daemon has read but never answers) dies only when that daemon does.
_unreaped: set[int] = set()
REAP_SECONDS = 0.2


def _reap(child: int) -> None:
    """Wait briefly for child; one that will not die is reaped by a later call, not waited for."""
    _unreaped.add(child)
    deadline = time.monotonic() + REAP_SECONDS
    while True:
        for pid in list(_unreaped):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    _unreaped.discard(pid)
            except ChildProcessError:
                _unreaped.discard(pid)
        if child not in _unreaped or time.monotonic() >= deadline:
            return
        time.sleep(0.002)


def needs_tree(step: Step) -> bool:
    return step.action in (Action.ATTACH, Action.REPLACE)


def apply_in_namespace(
    mntns_fd: int, steps: list[Step], trees: dict[int, int], timeout: float = CHILD_TIMEOUT_SECONDS
) -> list[Outcome]:
    """Enter the namespace behind mntns_fd in a child and apply steps.

    trees maps a step's index to its detached mount fd (opened with open_tree).
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child; its results come back through the pipe
        status = 1
        try:
            os.close(read_end)
            syscalls.setns(mntns_fd, syscalls.CLONE_NEWNS)
            results = [list(apply_step(step, trees.get(i))[1:]) for i, step in enumerate(steps)]
            os.write(write_end, json.dumps(results).encode())
            status = 0
        except BaseException as err:  # everything must reach the parent, never a traceback here
            os.write(write_end, json.dumps(f"{type(err).__name__}: {err}").encode())
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        reply_bytes = _read_until_eof(read_end, time.monotonic() + timeout)
    except TimeoutError:
        # A path in the container that never answers (a hung FUSE or NFS mount there)
        # must not stall the daemon's injection thread for good.
        os.kill(child, signal.SIGKILL)
        raise OSError(errno.ETIMEDOUT, f"the container's mount namespace did not answer within {timeout:g}s") from None
    finally:
        os.close(read_end)
        _reap(child)
    reply = json.loads(reply_bytes or b'"no reply from the child"')
    if isinstance(reply, str):
        raise OSError(errno.EPERM, f"entering the mount namespace failed: {reply}")
    return [Outcome(step, done, error) for step, (done, error) in zip(steps, reply)]
