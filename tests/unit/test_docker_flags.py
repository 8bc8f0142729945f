"""docker-args: only what docker's -v can name and runc accepts as a spec mount."""

import pytest

from containerfs.inject.attach import ViewSource
from containerfs.inject.commands import docker_flags

BLOCK_STAT = "sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda/stat"


@pytest.mark.parametrize(
    ("view", "flagged"),
    [
        ("proc/meminfo", True),
        ("proc/vmstat", False),  # runc refuses it as a spec mount
        ("sys/devices/system/cpu", True),
        (BLOCK_STAT, False),  # colons: docker refuses the whole run
        ("sys/devices/virtual/block/loop0/stat", False),  # comes with the hook, inject or the watcher
    ],
)
def test_docker_flags_name_only_spec_mountable_views(view: str, flagged: bool) -> None:
    flags = docker_flags(ViewSource("/var/lib/containerfs", "containerfs:/var/lib/containerfs", "0:1", (view,)))
    assert flags == (f"-v /var/lib/containerfs/{view}:/{view}:ro" if flagged else "")


def test_no_flag_holds_more_than_the_two_colons_of_a_volume() -> None:
    views = ("proc/meminfo", "sys/devices/system/cpu", BLOCK_STAT, "proc/vmstat")
    flags = docker_flags(ViewSource("/var/lib/containerfs", "containerfs:/var/lib/containerfs", "0:1", views)).split()
    assert flags[0::2] == ["-v", "-v"]
    assert all(spec.count(":") == 2 for spec in flags[1::2])
