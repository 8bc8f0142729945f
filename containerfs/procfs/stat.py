"""/proc/stat: cpu lines as typed records, everything else kept verbatim."""

from __future__ import annotations

from typing import NamedTuple

from containerfs.host.errors import parser

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
    cpu_fields: dict[str, str]  # "cpu", "cpu0", ... -> that line's counters, still text
    other_lines: list[str]  # intr, ctxt, btime, processes, procs_*, softirq, in order

    def times(self, name: str) -> CpuTimes | None:
        """One cpu line's counters; parsed on demand, as a container needs few of a host's."""
        fields = self.cpu_fields.get(name)
        # Older kernels print fewer columns; the missing ones are zero.
        return None if fields is None else CpuTimes(*map(int, fields.split()[: len(CPU_FIELDS)]))


@parser
def parse_stat(text: str) -> HostStat:
    cpu_fields: dict[str, str] = {}
    other: list[str] = []
    for line in text.split("\n"):
        if line.startswith("cpu"):
            name, _, fields = line.partition(" ")
            cpu_fields[name] = fields
        elif line:
            # Kept verbatim and not split: the intr line has thousands of fields.
            other.append(line)
    return HostStat(cpu_fields, other)


def render_cpu_line(name: str, times: CpuTimes) -> str:
    return name + " " + " ".join(str(v) for v in times) + "\n"


def render_stat(per_cpu: list[CpuTimes], other_lines: list[str]) -> str:
    total = CpuTimes(*(sum(col) for col in zip(*per_cpu))) if per_cpu else CpuTimes()
    # The aggregate line has two spaces after "cpu" in the kernel's output.
    out = ["cpu  " + " ".join(str(v) for v in total) + "\n"]
    out.extend(render_cpu_line(f"cpu{i}", times) for i, times in enumerate(per_cpu))
    out.extend(line + "\n" for line in other_lines)
    return "".join(out)
