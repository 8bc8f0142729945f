"""The watcher keeps looking at a container until its views are in place, declined, or given up on."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest

from containerfs.containers.discover import ContainerRecord
from containerfs.inject import service as service_module
from containerfs.inject.attach import ViewSource
from containerfs.inject.namespace import ABSENT, Outcome
from containerfs.inject.plan import Action, Step
from containerfs.inject.policy import MOUNTPOINT_ANNOTATION, WatchPolicy
from containerfs.inject.scan import has_pivoted
from containerfs.inject.service import MAX_ATTEMPTS, InjectionService
from containerfs.procfs.mountinfo import Mount

SOURCE = ViewSource("/run/cfs-test", "containerfs:/run/cfs-test", "0:99", ("proc/meminfo", "sys/x/stat"))
ROOTFS = Mount("/", "overlay", "overlay", "0:50", "/")
PROC = Mount("/proc", "proc", "proc", "0:51", "/")
HOST_ROOT = Mount("/", "ext4", "/dev/vda1", "254:1", "/")


def _record(pid: int, ns: str) -> ContainerRecord:
    return ContainerRecord(pid, f"pid:[{pid}]", ns, {"": f"/box/{pid}"}, f"/box/{pid}", "runc", str(pid), str(pid), "")


def _view(view: str) -> Mount:
    return Mount("/" + view, "fuse.containerfs", SOURCE.source, SOURCE.dev, "/" + view)


class World:
    """Containers' mount tables, and what happens when the watcher binds views into them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.containers: list[ContainerRecord] = []
        self.mounts: dict[int, list[Mount]] = {}
        self.calls: dict[int, int] = {}
        self.behaviour: dict[int, str] = {}  # pid -> "works", "lost once", "hangs", "no sys"
        self.annotations: dict[int, dict[str, str] | None] = {}  # None: no runtime state
        monkeypatch.setattr(service_module, "ready_containers", lambda proc_root, resolver: list(self.containers))
        monkeypatch.setattr(service_module, "annotations_of", lambda pid, run_root: self.annotations.get(pid, {}))
        monkeypatch.setattr(service_module, "mounts_of", lambda pid, proc_root: list(self.mounts[pid]))
        monkeypatch.setattr(service_module, "carry_out", self.carry_out)

    def add(self, pid: int, behaviour: str) -> None:
        self.containers.append(_record(pid, f"mnt:[{pid}]"))
        self.mounts[pid] = [ROOTFS, PROC]
        self.behaviour[pid] = behaviour

    def carry_out(
        self, source: ViewSource, pid: int, steps: list[Step], proc_root: str, timeout: float
    ) -> list[Outcome]:
        self.calls[pid] = self.calls.get(pid, 0) + 1
        behaviour = self.behaviour[pid]
        if behaviour == "hangs":
            raise OSError(errno.ETIMEDOUT, "the container's mount namespace did not answer within 0.5s")
        outcomes = []
        for step in steps:
            if behaviour == "no sys" and step.view.startswith("sys/"):
                outcomes.append(Outcome(step, False, ABSENT))
                continue
            # "lost once": bound on the host's root still stacked on the container's, which
            # its runtime then detaches, views and all.
            if not (behaviour == "lost once" and self.calls[pid] == 1):
                self.mounts[pid].append(_view(step.view))
            outcomes.append(Outcome(step, True))
        return outcomes


def _passes(service: InjectionService, count: int, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(service_module.time, "monotonic", lambda: clock[0])
    for _ in range(count):
        service.watch_once(SOURCE, WatchPolicy())
        clock[0] += 5.0  # past any retry delay


def _service(tmp_path: Path) -> InjectionService:
    return InjectionService(SOURCE.mountpoint, "/proc", str(tmp_path), WatchPolicy())


def test_views_lost_right_after_binding_are_bound_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    world.add(101, "lost once")
    service = _service(tmp_path)
    _passes(service, 1, monkeypatch)
    assert world.calls[101] == 1 and "mnt:[101]" not in service._seen  # reported done, not yet seen in place
    _passes(service, 3, monkeypatch)
    assert world.calls[101] == 2
    assert {m.mountpoint for m in world.mounts[101]} >= {"/proc/meminfo", "/sys/x/stat"}
    assert "mnt:[101]" in service._seen and not service._pending


def test_a_hung_namespace_is_retried_a_bounded_number_of_times_without_holding_up_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    world = World(monkeypatch)
    world.add(201, "hangs")
    world.add(202, "works")
    service = _service(tmp_path)
    with caplog.at_level(logging.INFO, logger="containerfs.inject"):
        _passes(service, MAX_ATTEMPTS + 5, monkeypatch)
    assert world.calls[202] == 1 and "mnt:[202]" in service._seen
    assert world.calls[201] == MAX_ATTEMPTS  # then given up on, not tried on every pass
    assert "mnt:[201]" in service._seen and not service._pending
    gave_up = [r for r in caplog.records if "giving up" in r.getMessage()]
    assert len(gave_up) == 1 and gave_up[0].levelno == logging.INFO
    assert "201" in gave_up[0].getMessage() and "did not answer" in gave_up[0].getMessage()


def test_a_view_without_a_target_does_not_keep_a_container_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(monkeypatch)
    world.add(301, "no sys")
    service = _service(tmp_path)
    _passes(service, 4, monkeypatch)
    assert world.calls[301] == 1 and "mnt:[301]" in service._seen
    assert [m.mountpoint for m in world.mounts[301] if m.fstype == "fuse.containerfs"] == ["/proc/meminfo"]


def test_a_declined_container_is_never_entered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    world.add(401, "works")
    world.annotations[401] = {MOUNTPOINT_ANNOTATION: "/elsewhere"}
    service = _service(tmp_path)
    _passes(service, 3, monkeypatch)
    assert 401 not in world.calls and "mnt:[401]" in service._seen


def test_a_container_that_already_has_its_views_costs_no_fork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(monkeypatch)
    world.add(501, "works")
    world.mounts[501] += [_view(v) for v in SOURCE.views]
    service = _service(tmp_path)
    _passes(service, 2, monkeypatch)
    assert 501 not in world.calls and "mnt:[501]" in service._seen


UNPIVOTED = {(HOST_ROOT.dev, HOST_ROOT.root)}


@pytest.mark.parametrize(
    ("mounts", "pivoted"),
    [
        ([HOST_ROOT, PROC], False),  # being created: still the runtime's root
        ([ROOTFS, PROC], True),
        # pivot_root(".", "."): the host's root stacked on the new one until it is
        # detached, listed first (mountinfo is ordered by mount id since Linux 6.8)
        ([HOST_ROOT, ROOTFS, PROC], False),
        ([ROOTFS, HOST_ROOT, PROC], False),
        ([PROC], False),  # no root at all: an odd table, not a container to bind into
    ],
)
def test_has_pivoted(mounts: list[Mount], pivoted: bool) -> None:
    assert has_pivoted(mounts, UNPIVOTED) is pivoted  # type: ignore[arg-type]


def test_plan_still_skips_views_the_container_mounted_itself() -> None:
    own = Mount("/proc/meminfo", "ext4", "/dev/sda1", "8:1", "/x")
    steps = service_module.plan_attach([ROOTFS, PROC, own], SOURCE.source, SOURCE.dev, SOURCE.views)
    assert [s.action for s in steps] == [Action.LEAVE, Action.ATTACH]


def test_a_container_outside_the_policy_is_judged_again_when_its_cgroup_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(monkeypatch)
    world.add(601, "works")
    early = world.containers[0]
    world.containers[0] = early._replace(cgroup="/runtime-parent")  # not yet moved into its own cgroup
    service = InjectionService(SOURCE.mountpoint, "/proc", str(tmp_path), WatchPolicy(include=("/box/*",)))
    clock = [1000.0]
    monkeypatch.setattr(service_module.time, "monotonic", lambda: clock[0])
    service.watch_once(SOURCE, WatchPolicy(include=("/box/*",)))
    assert 601 not in world.calls
    world.containers[0] = early
    for _ in range(3):
        clock[0] += 5.0
        service.watch_once(SOURCE, WatchPolicy(include=("/box/*",)))
    assert world.calls[601] == 1 and "mnt:[601]" in service._seen


# None: no runtime state the daemon can find (Docker's own exec root); {}: runc's state
# without annotations (ctr under containerd, whose runc root is always /run/containerd/runc).
@pytest.mark.parametrize("annotations", [None, {}])
def test_environment_markers_are_awaited_while_the_init_is_still_the_runtimes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, annotations: dict[str, str] | None
) -> None:
    world = World(monkeypatch)
    world.add(601, "works")
    world.annotations[601] = annotations
    proc = tmp_path / "proc" / "601"
    proc.mkdir(parents=True)
    (proc / "comm").write_text("runc:[2:INIT]\n")
    (proc / "environ").write_text("PATH=/bin\0")
    (tmp_path / "proc" / "self").symlink_to("/proc/self")  # the daemon's own namespaces
    service = InjectionService(SOURCE.mountpoint, str(tmp_path / "proc"), str(tmp_path), WatchPolicy())
    clock = [1000.0]
    monkeypatch.setattr(service_module.time, "monotonic", lambda: clock[0])
    service.watch_once(SOURCE, WatchPolicy())
    clock[0] += 2.0  # past the grace for runtime state, not past the one for a created container
    service.watch_once(SOURCE, WatchPolicy())
    assert 601 not in world.calls
    (proc / "comm").write_text("sleep\n")  # started: the container's own environment
    (proc / "environ").write_text("PATH=/bin\0CONTAINERFS_VIEWS_FROM=/elsewhere/*\0")
    service.watch_once(SOURCE, WatchPolicy())
    assert 601 not in world.calls and "mnt:[601]" in service._seen
