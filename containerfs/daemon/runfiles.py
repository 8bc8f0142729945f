"""Names of the files a daemon keeps in its run directory, one set per mountpoint."""

from __future__ import annotations

import os

# What systemd-escape --path leaves as it is.
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_.")


def escape_path(path: str) -> str:
    """A mountpoint as one file name, like `systemd-escape --path`: /var/lib/x -> var-lib-x."""
    trimmed = os.path.normpath(path).strip("/")
    if not trimmed:
        return "-"
    out = []
    for index, char in enumerate(trimmed):
        if char == "/":
            out.append("-")
        elif char in _SAFE and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return "".join(out)
