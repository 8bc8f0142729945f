"""The kernel's binary interfaces for sysinfo(2) and seccomp user notification.

Layouts from include/uapi/linux/sysinfo.h and include/uapi/linux/seccomp.h (checked
against the compiler's sizeof/offsetof by tests/unit/test_sysinfo_abi.py).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

# _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, struct seccomp_notif_resp),
# _IOW('!', 2, __u64): direction << 30 | size << 16 | '!' << 8 | nr.
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF_ID_VALID = 0x40082102
# Lets the kernel run the real call (Linux >= 5.5): the answer to anything we cannot answer.
FLAG_CONTINUE = 1

# struct seccomp_notif: id, pid, flags, then struct seccomp_data (nr, arch, ip, args[6]).
_NOTIF = struct.Struct("<QIIiIQ6Q")
# struct seccomp_notif_resp: id, val, error, flags.
_RESP = struct.Struct("<QqiI")
NOTIF_SIZE = _NOTIF.size
RESP_SIZE = _RESP.size

# struct sysinfo with 64-bit longs: uptime, loads[3], six memory figures, procs, pad,
# totalhigh, freehigh, mem_unit, then padding to 112 bytes (_f[0] plus alignment).
_SYSINFO = struct.Struct("<q3Q6QHH4xQQI4x")
SYSINFO_SIZE = _SYSINFO.size
# loads[] are fixed point with 16 fractional bits (SI_LOAD_SHIFT).
SI_LOAD_SHIFT = 16

# AUDIT_ARCH_* -> the native sysinfo(2) number.  Only 64-bit callers get an answer: a
# 32-bit caller's struct has another layout, so its calls run the kernel's sysinfo.
SYSINFO_NR = {0xC000003E: 99, 0xC00000B7: 179}  # x86_64, aarch64
# x32 shares AUDIT_ARCH_X86_64 but marks its numbers with this bit (and 32-bit longs).
X32_SYSCALL_BIT = 0x40000000


class Notification(NamedTuple):
    id: int
    pid: int
    nr: int
    arch: int
    args: tuple[int, ...]

    def is_native_sysinfo(self) -> bool:
        return SYSINFO_NR.get(self.arch) == self.nr and not self.nr & X32_SYSCALL_BIT


def parse_notification(data: bytes) -> Notification:
    notif_id, pid, _flags, nr, arch, _ip, *args = _NOTIF.unpack_from(data)
    return Notification(notif_id, pid, nr, arch, tuple(args))


def pack_response(notif_id: int, *, val: int = 0, error: int = 0, flags: int = 0) -> bytes:
    return _RESP.pack(notif_id, val, error, flags)


def pack_id(notif_id: int) -> bytes:
    return struct.pack("<Q", notif_id)


class Sysinfo(NamedTuple):
    """struct sysinfo's figures; memory in units of mem_unit bytes."""

    uptime: int
    loads: tuple[int, int, int]  # 1/65536 fixed point
    totalram: int
    freeram: int
    sharedram: int
    bufferram: int
    totalswap: int
    freeswap: int
    procs: int
    mem_unit: int


_ULONG_MAX = (1 << 64) - 1


def _ulong(value: int) -> int:
    return max(0, min(value, _ULONG_MAX))


def pack_sysinfo(info: Sysinfo) -> bytes:
    """The struct as the caller's memory holds it; out-of-range figures are clamped, never wrapped."""
    return _SYSINFO.pack(
        max(0, min(info.uptime, (1 << 63) - 1)),
        *(_ulong(v) for v in info.loads),
        *(
            _ulong(v)
            for v in (info.totalram, info.freeram, info.sharedram, info.bufferram, info.totalswap, info.freeswap)
        ),
        # procs is 16 bits in the kernel too: it saturates rather than wraps.
        max(0, min(info.procs, 0xFFFF)),
        0,
        0,
        0,
        max(1, min(info.mem_unit, 0xFFFFFFFF)),
    )


def unpack_sysinfo(data: bytes) -> Sysinfo:
    uptime, l1, l5, l15, total, free, shared, buffer, tswap, fswap, procs, _pad, _th, _fh, unit = _SYSINFO.unpack_from(
        data
    )
    return Sysinfo(uptime, (l1, l5, l15), total, free, shared, buffer, tswap, fswap, procs, unit)
