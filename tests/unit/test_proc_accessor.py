"""ProcFS/Process: the one way to a process's files, and ProcessGone for every way a process goes."""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

import pytest

import containerfs.host.proc as module
from containerfs.host.errors import ParseError, ProcessGone
from containerfs.host.proc import Process, ProcFS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
WEB_INIT = 2000


@pytest.fixture
def proc(tmp_path: Path) -> ProcFS:
    target = tmp_path / "v2"
    shutil.copytree(FIXTURES / "v2", target, symlinks=True)
    return ProcFS(str(target / "proc"))


def test_a_process_reads_its_files(proc: ProcFS) -> None:
    web = proc.process(WEB_INIT)
    assert web.stat().starttime > 0
    assert web.status().nspid[-1] == 1
    assert web.cgroups()[""].startswith("/system.slice/docker-")
    assert web.ns("pid") == "pid:[4026532298]"
    assert WEB_INIT in web.tasks()
    assert proc.self_process().ns("pid") == "pid:[4026531836]"
    assert WEB_INIT in proc.pids() and proc.pids() == sorted(proc.pids())


@pytest.mark.parametrize("read", ["stat", "status", "cgroups", "mountinfo", "tasks", "ns"])
def test_a_vanished_process_is_process_gone_whatever_is_read(proc: ProcFS, read: str) -> None:
    gone = proc.process(999999)
    with pytest.raises(ProcessGone):
        getattr(gone, read)(*(["pid"] if read == "ns" else []))


def test_text_cut_short_as_the_process_exits_is_process_gone(proc: ProcFS, monkeypatch: pytest.MonkeyPatch) -> None:
    web = proc.process(WEB_INIT)
    monkeypatch.setattr(Process, "read", lambda self, name: "")  # read, then the process went
    monkeypatch.setattr(Process, "exists", lambda self: False)
    with pytest.raises(ProcessGone):
        web.stat()


def test_malformed_text_of_a_live_process_stays_a_parse_error(proc: ProcFS) -> None:
    (Path(proc.root) / str(WEB_INIT) / "stat").write_text("not a stat line")
    with pytest.raises(ParseError):
        proc.process(WEB_INIT).stat()


def test_esrch_is_process_gone_other_errors_stay_oserrors(proc: ProcFS, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(code: int) -> None:
        def read_text(path: str) -> str:
            raise OSError(code, errno.errorcode[code])

        monkeypatch.setattr(module, "read_text", read_text)

    failing(errno.ESRCH)
    with pytest.raises(ProcessGone):
        proc.process(WEB_INIT).status()
    failing(errno.EACCES)
    with pytest.raises(PermissionError):
        proc.process(WEB_INIT).status()


def test_no_module_builds_a_process_path_by_hand() -> None:
    # Every /proc/PID path is built by host/proc.py: one place, one ProcessGone.
    package = Path(__file__).resolve().parents[2] / "containerfs"
    pattern = re.compile(
        r"proc_root\}?\s*[,/+]\s*f?[\"']?\{?(pid|tid|init|str\(pid)"  # f"{proc_root}/{pid}", join(proc_root, pid)
        r"|/proc/(self|\{)"  # a literal /proc/self/... or /proc/{pid}/...
    )
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        if path.name != "proc.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
