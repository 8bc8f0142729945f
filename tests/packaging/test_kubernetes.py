"""deploy/kubernetes/containerfs-daemonset.yaml is a DaemonSet that can work: parsed and
checked for what the daemon needs on a node (no cluster here to apply it to)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kubernetes" / "containerfs-daemonset.yaml"
CONTAINERFILE = REPO / "packaging" / "container" / "Containerfile"


@pytest.fixture(scope="module")
def daemonset() -> dict[str, Any]:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    assert len(documents) == 1
    return documents[0]


def test_it_is_a_daemonset_whose_selector_matches_its_pods(daemonset: dict[str, Any]) -> None:
    assert (daemonset["apiVersion"], daemonset["kind"]) == ("apps/v1", "DaemonSet")
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_pods_run_on_every_node_privileged_in_the_host_pid_namespace(daemonset: dict[str, Any]) -> None:
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    assert {"operator": "Exists"} in pod["tolerations"]
    assert pod["priorityClassName"] == "system-node-critical"
    (container,) = pod["containers"]
    assert container["securityContext"]["privileged"] is True
    argv = container["command"] + container.get("args", [])
    start = argv.index("containerfs")
    assert argv[start : start + 3] == ["containerfs", "mount", "-f"]
    assert "--watch" in argv and argv[-1] == "/var/lib/containerfs"


def test_host_paths_are_mounted_and_the_views_propagate_to_the_node(daemonset: dict[str, Any]) -> None:
    pod = daemonset["spec"]["template"]["spec"]
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert {m["name"] for m in mounts.values()} == set(volumes), "every volume mounted, every mount a volume"
    host_of = {path: volumes[m["name"]] for path, m in mounts.items()}
    assert host_of == {
        "/var/lib/containerfs": "/var/lib/containerfs",
        "/sys/fs/cgroup": "/sys/fs/cgroup",
        "/run/containerfs": "/run/containerfs",
        "/dev/fuse": "/dev/fuse",
    }
    assert mounts["/var/lib/containerfs"]["mountPropagation"] == "Bidirectional"
    assert mounts["/sys/fs/cgroup"]["readOnly"] is True


def test_the_image_recipe_copies_files_that_exist() -> None:
    copied = re.findall(r"^COPY (.+) /src/", CONTAINERFILE.read_text(), re.MULTILINE)
    sources = [name for line in copied for name in line.split()]
    assert sources, "the Containerfile installs the checkout"
    assert all((REPO / name).exists() for name in sources), sources
