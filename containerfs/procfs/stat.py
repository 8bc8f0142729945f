"""/proc/stat: cpu lines as typed records, everything else kept verbatim."""

from __future__ import annotations

from typing import NamedTuple

# Column order of the cpu lines since Linux 2.6.33 (guest_nice).
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


class CpuTimes(NamedTuple):
    user: int = 0
    nice: int = 0
    system: int = 0
    idle: int = 0
    iowait: int = 0
    irq: int = 0
    softirq: int = 0
    steal: int = 0
    guest: int = 0
    guest_nice: int = 0

    def total(self) -> int:
        # guest and guest_nice are already included in user and nice.
        return sum(self[:8])


class HostStat(NamedTuple):
    total: CpuTimes
    per_cpu: dict[int, CpuTimes]
    other_lines: list[str]  # intr, ctxt, btime, processes, procs_*, softirq, in order


def _cpu_times(fields: list[str]) -> CpuTimes:
    # Older kernels print fewer columns; the missing ones are zero.
    return CpuTimes(*map(int, fields[: len(CPU_FIELDS)]))


def parse_stat(text: str) -> HostStat:
    total = CpuTimes()
    per_cpu: dict[int, CpuTimes] = {}
    other: list[str] = []
    for line in text.split("\n"):
        if not line.startswith("cpu"):
            # Kept verbatim and not split: the intr line has thousands of fields.
            if line:
                other.append(line)
            continue
        fields = line.split()
        name = fields[0]
        if name == "cpu":
            total = _cpu_times(fields[1:])
        elif name[3:].isdigit():
            per_cpu[int(name[3:])] = _cpu_times(fields[1:])
    return HostStat(total, per_cpu, other)


def render_cpu_line(name: str, times: CpuTimes) -> str:
    return name + " " + " ".join(str(v) for v in times) + "\n"


def render_stat(per_cpu: list[CpuTimes], other_lines: list[str]) -> str:
    total = CpuTimes(*(sum(col) for col in zip(*per_cpu))) if per_cpu else CpuTimes()
    # The aggregate line has two spaces after "cpu" in the kernel's output.
    out = ["cpu  " + " ".join(str(v) for v in total) + "\n"]
    out.extend(render_cpu_line(f"cpu{i}", times) for i, times in enumerate(per_cpu))
    out.extend(line + "\n" for line in other_lines)
    return "".join(out)
