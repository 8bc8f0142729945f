"""The binary RPM that packaging/rpm/build-rpm.sh builds: its files, requirements,
scriptlets and systemd unit, and the packaged code run from the unpacked RPM.

Needs rpmbuild and rpm2archive (Debian: apt-get install rpm) and pip access for the build;
the mount test also needs root, /dev/fuse and fusermount3.  Missing ones skip the tests,
or fail them when CI=true.
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from containerfs import __version__
from containerfs.views.registry import VIEWS

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
GOLDEN = REPO / "tests" / "golden"
LAUNCHER = "/usr/bin/containerfs"
RUNTIME = "/usr/bin/containerfs-runtime"  # a link to the launcher
UNIT = "/usr/lib/systemd/system/containerfs.service"
SYSCONFIG = "/etc/sysconfig/containerfs"
OCI_HOOK = "/usr/share/containers/oci/hooks.d/containerfs.json"
LXC_HOOK = "/usr/share/containerfs/lxc-mount-hook"
VENDOR = "/usr/lib/containerfs"
# Packaged file -> the checkout file it must be a copy of.
COPIES = {
    LAUNCHER: "packaging/rpm/containerfs-launcher",
    UNIT: "packaging/systemd/containerfs.service",
    SYSCONFIG: "packaging/systemd/containerfs.sysconfig",
    OCI_HOOK: "packaging/oci/containerfs.json",
    LXC_HOOK: "packaging/lxc/containerfs-mount-hook",
    "/usr/share/doc/containerfs/README.md": "README.md",
}
ENGINES = {"docker.service", "containerd.service", "crio.service", "podman.service", "lxc.service"}


def require(ok: object, what: str) -> None:
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(f"prerequisite missing: {what}", pytrace=False)
        pytest.skip(f"prerequisite missing: {what}")


def rpm_query(rpm: Path, *args: str) -> str:
    return subprocess.run(["rpm", "-qp", *args, str(rpm)], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def rpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(shutil.which("rpmbuild") and shutil.which("rpm2archive"), "rpmbuild, rpm2archive (apt-get install rpm)")
    out = tmp_path_factory.mktemp("rpm")
    result = subprocess.run(
        [str(REPO / "packaging" / "rpm" / "build-rpm.sh"), str(out)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    built = sorted(p.name for p in out.iterdir())
    # Self-contained: the work tree is gone, only the package is left (RHEL adds .elN).
    assert len(built) == 1 and fnmatch.fnmatch(built[0], f"containerfs-{__version__}-1*.noarch.rpm"), built
    return out / built[0]


@pytest.fixture(scope="module")
def files(rpm: Path) -> dict[str, str]:
    """Packaged path -> its mode string (`-rwxr-xr-x`, `drwxr-xr-x`)."""
    listing = rpm_query(rpm, "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]")
    return {path: mode for mode, path in (line.split(" ", 1) for line in listing.splitlines())}


@pytest.fixture(scope="module")
def python_abi(rpm: Path) -> str:
    abis = re.findall(r"^python\(abi\) = (3\.\d+)$", rpm_query(rpm, "-R"), re.MULTILINE)
    assert len(abis) == 1, "the RPM must require exactly one python(abi)"
    return abis[0]


@pytest.fixture(scope="module")
def unpacked(rpm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    with rpm.open("rb") as package:
        archive = subprocess.run(["rpm2archive", "-"], stdin=package, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:*") as tar:
        tar.extractall(root, filter="data")
    return root


def sitelib(python_abi: str) -> str:
    return f"/usr/lib/python{python_abi}/site-packages"


def test_rpm_holds_the_package_the_command_and_the_integration_files(files: dict[str, str], python_abi: str) -> None:
    site = sitelib(python_abi)
    tag = f"cpython-{python_abi.replace('.', '')}"
    modules = [p.relative_to(REPO) for p in (REPO / "containerfs").rglob("*.py")]
    expected = {f"{site}/{m}" for m in modules}
    expected |= {f"{site}/{m.parent}/__pycache__/{m.stem}.{tag}.pyc" for m in modules}
    expected |= {f"{VENDOR}/mfusepy.py", f"{VENDOR}/__pycache__/mfusepy.{tag}.pyc"}
    expected |= set(COPIES) | {"/usr/share/licenses/containerfs/LICENSE.mfusepy"}
    dist_info = f"{site}/containerfs-{__version__}.dist-info/"
    regular = {path for path, mode in files.items() if mode.startswith("-")}
    # Exactly these files, plus the wheel's metadata (its file set is setuptools' business).
    assert {p for p in regular if not p.startswith(dist_info)} == expected
    metadata = {p.removeprefix(dist_info) for p in regular if p.startswith(dist_info)}
    assert {"METADATA", "entry_points.txt", "INSTALLER"} <= metadata
    assert "RECORD" not in metadata, "pip must not think it can uninstall rpm's files"
    assert files[LAUNCHER] == files[LXC_HOOK] == "-rwxr-xr-x"
    assert files["/var/lib/containerfs"] == "drwxr-xr-x"
    assert files[RUNTIME].startswith("l")


def test_sysconfig_is_a_config_file_an_upgrade_keeps(rpm: Path) -> None:
    flags = dict(
        line.split(" ", 1)[::-1] for line in rpm_query(rpm, "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\n]").splitlines()
    )
    assert set(flags[SYSCONFIG]) >= {"c", "n"}
    assert rpm_query(rpm, "-c").split() == [SYSCONFIG]


def test_requires_are_rhel_package_names(rpm: Path, python_abi: str) -> None:
    requires = {line.strip() for line in rpm_query(rpm, "-R").splitlines()}
    assert {"python3", "fuse3", "fuse3-libs", "systemd", f"python(abi) = {python_abi}"} <= requires
    assert not [r for r in requires if "psutil" in r], "containerfs does not import psutil"
    # Nothing unresolvable on RHEL: no generated python3.Xdist() for the vendored mfusepy.
    assert not [r for r in requires if "dist(" in r], requires
    assert "bundled(python3dist(mfusepy))" in rpm_query(rpm, "--provides")


def test_scriptlets_preset_the_unit_stop_it_on_removal_and_restart_it_on_upgrade(rpm: Path) -> None:
    scripts: dict[str, str] = {}
    name = None
    for line in rpm_query(rpm, "--scripts").splitlines():
        header = re.match(r"^(\w+) scriptlet \(using /bin/sh\):$", line)
        if header:
            name = header.group(1)
            scripts[name] = ""
        else:
            assert name is not None, line
            scripts[name] += line + "\n"
    assert set(scripts) == {"postinstall", "preuninstall", "postuninstall"}
    post, preun, postun = scripts["postinstall"], scripts["preuninstall"], scripts["postuninstall"]
    # Debian's rpm gets the spec's fallbacks (systemctl), RHEL 9+ systemd-update-helper.
    assert "containerfs.service" in post and ("preset" in post or "install-system-units" in post), post
    assert "containerfs.service" in preun and ("disable --now" in preun or "remove-system-units" in preun), preun
    assert "containerfs.service" in postun and ("try-restart" in postun or "mark-restart" in postun), postun


def test_packaged_files_are_the_checkouts(unpacked: Path) -> None:
    for packaged, source in COPIES.items():
        assert (unpacked / packaged.lstrip("/")).read_bytes() == (REPO / source).read_bytes(), packaged


def unit_directives(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> values, in order; space-separated list keys are not split."""
    directives: dict[tuple[str, str], list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        directives.setdefault((section, key.strip()), []).append(value.strip())
    return directives


def test_unit_runs_the_daemon_in_the_foreground_before_the_container_engines(unpacked: Path) -> None:
    unit = unit_directives((unpacked / UNIT.lstrip("/")).read_text())

    def one(section: str, key: str) -> str:
        values = unit[(section, key)]
        assert len(values) == 1, (key, values)
        return values[0]

    assert one("Service", "Type") == "simple"
    assert one("Service", "EnvironmentFile") == "-/etc/sysconfig/containerfs"
    assert shlex.split(one("Service", "ExecStart")) == [
        "/usr/bin/containerfs", "mount", "-f", "$CONTAINERFS_OPTIONS", "/var/lib/containerfs"
    ]  # fmt: skip
    stop_post = one("Service", "ExecStopPost")
    assert stop_post.startswith("-") and shlex.split(stop_post[1:])[1:] == ["-u", "-z", "/var/lib/containerfs"]
    assert one("Service", "Restart") == "on-failure"
    assert one("Service", "OOMScoreAdjust") == "-1000"
    assert one("Service", "KillMode") == "mixed"
    assert set(" ".join(unit[("Unit", "Before")]).split()) >= ENGINES
    assert "local-fs.target" in one("Unit", "After").split()
    assert one("Install", "WantedBy") == "multi-user.target"


def test_sysconfig_turns_on_automatic_injection(unpacked: Path) -> None:
    sysconfig = unpacked / SYSCONFIG.lstrip("/")
    result = subprocess.run(
        ["sh", "-c", '. "$1" && printf %s "$CONTAINERFS_OPTIONS"', "sh", str(sysconfig)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "--watch"


def test_systemd_accepts_the_unit(unpacked: Path, tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    # verify insists that ExecStart's binary exists: point it at the unpacked one.
    text = (unpacked / UNIT.lstrip("/")).read_text()
    unit = tmp_path / "containerfs.service"
    unit.write_text(text.replace(f"{LAUNCHER} ", f"{unpacked}{LAUNCHER} "))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def run_packaged(unpacked: Path, python_abi: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The unpacked /usr/bin/containerfs, run by the interpreter its shebang names."""
    env = {**os.environ, "PYTHONPATH": f"{unpacked}{sitelib(python_abi)}"}
    return subprocess.run(
        [f"{unpacked}{LAUNCHER}", *args], env=env, capture_output=True, text=True, timeout=60, cwd="/"
    )


def test_packaged_command_runs_the_packaged_code_and_the_vendored_mfusepy(unpacked: Path, python_abi: str) -> None:
    assert run_packaged(unpacked, python_abi, "--version").stdout == f"containerfs {__version__}\n"
    launcher = f"{unpacked}{LAUNCHER}"
    shebang = Path(launcher).read_text().splitlines()[0]
    interpreter = shebang.removeprefix("#!").split()
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{launcher!r}, '--version']\n"
        "try:\n"
        f"    runpy.run_path({launcher!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "import containerfs.daemon.fuse_adapter, mfusepy\n"
        "print(containerfs.__file__)\n"
        "print(mfusepy.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{unpacked}{sitelib(python_abi)}"}
    # cwd /: `-c` puts the working directory first on sys.path, and the checkout's package is there.
    result = subprocess.run([*interpreter, "-c", probe], env=env, capture_output=True, text=True, timeout=60, cwd="/")
    assert result.returncode == 0, result.stderr
    package, vendored = result.stdout.splitlines()[-2:]
    assert Path(package) == unpacked / sitelib(python_abi).lstrip("/") / "containerfs" / "__init__.py"
    assert Path(vendored).resolve() == unpacked / VENDOR.lstrip("/") / "mfusepy.py"


def test_packaged_runtime_wrapper_runs_the_real_runtime(unpacked: Path, python_abi: str) -> None:
    env = {**os.environ, "PYTHONPATH": f"{unpacked}{sitelib(python_abi)}", "CONTAINERFS_RUNTIME": "runc"}
    env["CONTAINERFS_RUNTIME_CONFIG"] = "/nonexistent"
    result = subprocess.run(
        [f"{unpacked}{RUNTIME}", "--version"], env=env, capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("runc version"), result.stdout


def fixture_roots(host: str) -> list[str]:
    tree = FIXTURES / host
    return ["--proc-root", str(tree / "proc"), "--sys-root", str(tree / "sys"), "--cgroup-root", str(tree / "cgroup")]


@pytest.mark.parametrize("host", ["v1", "v2", "hybrid"])
def test_packaged_show_prints_the_golden_views(unpacked: Path, python_abi: str, host: str) -> None:
    for path in VIEWS:
        result = run_packaged(unpacked, python_abi, "show", *fixture_roots(host), "2000", path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == (GOLDEN / host / "2000" / path.replace("/", "_")).read_text(), path


def test_packaged_daemon_mounts_serves_and_unmounts(unpacked: Path, python_abi: str, tmp_path: Path) -> None:
    require(os.geteuid() == 0, "root")
    require(os.path.exists("/dev/fuse"), "/dev/fuse")
    require(shutil.which("fusermount3"), "fusermount3 (apt-get install fuse3)")
    tree = FIXTURES / "v2"
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log = tmp_path / "daemon.log"
    env = {**os.environ, "PYTHONPATH": f"{unpacked}{sitelib(python_abi)}"}
    argv = [f"{unpacked}{LAUNCHER}", "mount", "-f", *fixture_roots("v2"), str(mountpoint)]
    with log.open("w") as stderr:
        daemon = subprocess.Popen(argv, env=env, stderr=stderr, cwd="/")
    try:
        deadline = time.monotonic() + 20
        while not (mountpoint / "proc" / "meminfo").exists():
            assert daemon.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no mount after 20 s:\n" + log.read_text()
            time.sleep(0.1)
        # The test process is no process of the fixture host: it gets the host's file.
        assert (mountpoint / "proc" / "meminfo").read_bytes() == (tree / "proc" / "meminfo").read_bytes()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0, log.read_text()
        assert not os.path.ismount(mountpoint)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if os.path.ismount(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
