"""The wrapper's settings: /etc/containerfs/runtime.conf, overridden by the environment."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import NamedTuple

CONFIG_FILE = "/etc/containerfs/runtime.conf"
# Tests and unusual installs point the wrapper at another file.
CONFIG_ENV = "CONTAINERFS_RUNTIME_CONFIG"
KEYS = ("CONTAINERFS_RUNTIME", "CONTAINERFS_MOUNTPOINT", "CONTAINERFS_RUN_DIR")


class RuntimeConfig(NamedTuple):
    runtime: str = "runc"
    mountpoint: str = "/var/lib/containerfs"
    run_dir: str = "/run/containerfs"


class ConfigError(Exception):
    pass


def parse_conf(text: str) -> dict[str, str]:
    """KEY=value lines as in a sysconfig file: comments, blank lines, shell quoting."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, raw = line.partition("=")
        key = key.strip()
        if not sep or key not in KEYS:
            raise ConfigError(f"line {number}: expected one of {', '.join(KEYS)}=VALUE, got {line!r}")
        try:
            words = shlex.split(raw)
        except ValueError as err:
            raise ConfigError(f"line {number}: {err}") from err
        if len(words) != 1:
            raise ConfigError(f"line {number}: {key} needs exactly one value")
        values[key] = words[0]
    return values


def resolve_config(file_values: Mapping[str, str], env: Mapping[str, str]) -> RuntimeConfig:
    """The environment wins over the file, the file over the defaults; empty means unset."""

    def pick(key: str, default: str) -> str:
        return env.get(key) or file_values.get(key) or default

    defaults = RuntimeConfig()
    return RuntimeConfig(
        pick("CONTAINERFS_RUNTIME", defaults.runtime),
        pick("CONTAINERFS_MOUNTPOINT", defaults.mountpoint),
        pick("CONTAINERFS_RUN_DIR", defaults.run_dir),
    )


def load_config(env: Mapping[str, str]) -> RuntimeConfig:
    path = env.get(CONFIG_ENV) or CONFIG_FILE
    try:
        with open(path) as f:
            file_values = parse_conf(f.read())
    except FileNotFoundError:
        file_values = {}
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from err
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err
    return resolve_config(file_values, env)
