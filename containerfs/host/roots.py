"""Where the kernel's files are on a host: the defaults of the roots every reader is given."""

PROC_ROOT = "/proc"
SYS_ROOT = "/sys"
CGROUP_ROOT = "/sys/fs/cgroup"
