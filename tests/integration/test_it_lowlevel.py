"""The low-level FUSE adapter against the real kernel: sizes for page-cache readers,
unmount and signals end the daemon cleanly, the kernel's requests are answered."""

import os
import signal
import subprocess
import time

from cfs_harness import is_mounted


def _cpu_lines(text):
    return sum(line.startswith("cpu") for line in text.splitlines())


def test_busybox_cat_after_a_shorter_container_gets_the_whole_file(containerfs_mount, runc_container):
    """busybox cat reads with sendfile, through the page cache, up to the inode's size, and
    never stats: after a container with one CPU read /proc/stat that way (a short read, which
    shrinks the kernel's size), one with two CPUs must still get its whole, longer file."""
    mp = containerfs_mount.mountpoint
    small = runc_container.create(views_from=mp, cpus="0", memory=64 << 20, name="small")
    large = runc_container.create(views_from=mp, cpus="0-1", memory=512 << 20, name="large")
    for _ in range(3):
        rc, short, err = small.exec("busybox", "cat", "/proc/stat")
        assert rc == 0, err
        rc, whole, err = large.exec("busybox", "cat", "/proc/stat")
        assert rc == 0, err
        rc, by_read, err = large.exec("cat", "/proc/stat")  # coreutils cat: read(2)
        assert rc == 0, err
        assert (_cpu_lines(short), _cpu_lines(whole)) == (2, 3)
        assert len(whole) > len(short) and whole.endswith("\n") and "\0" not in whole
        assert whole.splitlines()[-1].split()[0] == by_read.splitlines()[-1].split()[0]
    assert containerfs_mount.alive()


def test_unmounting_from_outside_ends_the_daemon(start_containerfs):
    daemon = start_containerfs()
    deadline = time.monotonic() + 10
    # EBUSY while something on this shared machine briefly has the mount open: try again.
    while (
        done := subprocess.run(["fusermount3", "-u", str(daemon.mountpoint)], capture_output=True, text=True)
    ).returncode:
        assert "busy" in done.stderr and time.monotonic() < deadline, done.stderr
        time.sleep(0.2)
    daemon.proc.wait(timeout=10)
    assert daemon.proc.returncode == 0, daemon.log()


def test_sigterm_while_a_reader_holds_a_file_open_unmounts(start_containerfs):
    daemon = start_containerfs()
    with open(daemon.mountpoint / "proc" / "meminfo", "rb") as held:
        assert held.read(8) == b"MemTotal"
        os.kill(daemon.proc.pid, signal.SIGTERM)
        daemon.proc.wait(timeout=10)
    assert daemon.proc.returncode == 0, daemon.log()
    deadline = time.monotonic() + 5
    while is_mounted(daemon.mountpoint) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_mounted(daemon.mountpoint)


def test_directories_attributes_and_errors_through_the_kernel(containerfs_mount):
    mp = containerfs_mount.mountpoint
    assert sorted(os.listdir(mp)) == ["proc", "sys"]
    assert "meminfo" in os.listdir(mp / "proc")
    st = os.stat(mp / "proc" / "meminfo")
    assert st.st_mode & 0o777 == 0o444 and st.st_size >= len((mp / "proc" / "meminfo").read_bytes())
    for path, error in ((mp / "proc" / "nothere", FileNotFoundError), (mp / "proc", IsADirectoryError)):
        try:
            path.read_bytes()
        except error:
            pass
        else:
            raise AssertionError(f"{path} did not raise {error.__name__}")
    try:
        (mp / "proc" / "meminfo").write_text("x")
    except OSError as err:
        assert err.errno == 30  # EROFS
    else:
        raise AssertionError("a write succeeded")
    assert os.statvfs(mp).f_bsize == 4096
    assert containerfs_mount.alive()
