"""The bundle edit, as a pure function of config.json: the views' hook and the sysinfo rule."""

from __future__ import annotations

import copy
import os
from typing import Any, NamedTuple

from containerfs.inject.policy import declined

# createRuntime runs where prestart did (the runtime's namespaces, after the container's
# mounts, before pivot_root), and is not deprecated; containerfs oci-hook handles every stage.
HOOK_STAGE = "createRuntime"
NOTIFY = "SCMP_ACT_NOTIFY"
# Actions under which sysinfo runs: the only calls we may answer in the kernel's place.
_RUNS = {"SCMP_ACT_ALLOW", "SCMP_ACT_LOG"}
# What a profile we create lists: native and compat, so 32-bit programs keep working
# (their calls are notified too, and the holder lets the kernel answer them).
ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}


class Plan(NamedTuple):
    mountpoint: str  # the daemon's: a container may ask for another one's views (or none)
    hook_argv: list[str] | None  # containerfs oci-hook's argv, None: no hook
    listener_path: str | None  # the holder's socket, None: no sysinfo rule
    metadata: str = "containerfs sysinfo"
    architectures: tuple[str, ...] = ()


class Edit(NamedTuple):
    spec: dict[str, Any]
    changed: bool
    notes: list[str]  # why something was not added; one line each


def refusal(spec: dict[str, Any], mountpoint: str) -> str:
    """Why the container wants nothing from the daemon at mountpoint ("" if it does): the hook's rules."""
    annotations = spec.get("annotations")
    return declined(annotations if isinstance(annotations, dict) else {}, mountpoint)


def _is_our_hook(hook: Any) -> bool:
    if not isinstance(hook, dict):
        return False
    args = hook.get("args") or []
    return os.path.basename(str(hook.get("path", ""))) == "containerfs" and "oci-hook" in args


def _add_hook(spec: dict[str, Any], argv: list[str], notes: list[str]) -> bool:
    hooks = spec.setdefault("hooks", {})
    if not isinstance(hooks, dict) or not isinstance(hooks.get(HOOK_STAGE, []), list):
        notes.append("the bundle's hooks are not an object of lists: no views hook (the runtime will say more)")
        return False
    if any(_is_our_hook(h) for stage in hooks.values() if isinstance(stage, list) for h in stage):
        notes.append("the bundle already has containerfs's oci-hook")
        return False
    hooks.setdefault(HOOK_STAGE, []).append({"path": argv[0], "args": list(argv)})
    return True


def _sysinfo_rules(syscalls: list[Any]) -> list[dict[str, Any]]:
    return [r for r in syscalls if isinstance(r, dict) and isinstance(r.get("names"), list) and "sysinfo" in r["names"]]


def _add_sysinfo_rule(spec: dict[str, Any], plan: Plan, notes: list[str]) -> bool:
    assert plan.listener_path is not None
    linux = spec.setdefault("linux", {})
    seccomp = linux.get("seccomp") if isinstance(linux, dict) else None
    if not isinstance(linux, dict) or not isinstance(seccomp, (dict, type(None))):
        notes.append("the bundle's linux.seccomp is not an object: sysinfo not intercepted")
        return False
    rule = {"names": ["sysinfo"], "action": NOTIFY}
    if seccomp is None:
        seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
        if plan.architectures:
            seccomp["architectures"] = list(plan.architectures)
        linux["seccomp"] = seccomp
    else:
        listener = seccomp.get("listenerPath")
        if listener and listener != plan.listener_path:
            # One filter has one listener: another supervisor already owns this one.
            notes.append(f"the seccomp profile sends its notifications to {listener}: sysinfo not intercepted")
            return False
        syscalls = seccomp.get("syscalls")
        syscalls = [] if syscalls is None else syscalls
        if not isinstance(syscalls, list):
            notes.append("the seccomp profile's syscalls are not a list: sysinfo not intercepted")
            return False
        own = _sysinfo_rules(syscalls)
        if any(r.get("action") == NOTIFY for r in own) and listener == plan.listener_path:
            notes.append("the seccomp profile already sends sysinfo to containerfs")
            return False
        refusing = [r for r in own if r.get("action") not in _RUNS or r.get("args")]
        if refusing:
            notes.append(f"the seccomp profile has its own rule for sysinfo ({refusing[0].get('action')}): kept")
            return False
        if not own and seccomp.get("defaultAction") not in _RUNS:
            notes.append(f"the seccomp profile denies sysinfo ({seccomp.get('defaultAction')}): kept")
            return False
        # libseccomp refuses two actions for one syscall: the allow becomes our notify.
        emptied = []
        for r in own:
            r["names"] = [n for n in r["names"] if n != "sysinfo"]
            if not r["names"]:
                emptied.append(id(r))
        seccomp["syscalls"] = [r for r in syscalls if id(r) not in emptied]
    seccomp["syscalls"].append(rule)
    seccomp["listenerPath"] = plan.listener_path
    seccomp["listenerMetadata"] = plan.metadata
    return True


def edit_spec(spec: dict[str, Any], plan: Plan) -> Edit:
    """config.json with the views' hook and the sysinfo rule added, keeping what is there."""
    reason = refusal(spec, plan.mountpoint)
    if reason:
        return Edit(spec, False, [f"nothing added: {reason}"])
    edited = copy.deepcopy(spec)
    notes: list[str] = []
    changed = False
    if plan.hook_argv:
        changed |= _add_hook(edited, plan.hook_argv, notes)
    if plan.listener_path:
        changed |= _add_sysinfo_rule(edited, plan, notes)
    return Edit(edited if changed else spec, changed, notes)
