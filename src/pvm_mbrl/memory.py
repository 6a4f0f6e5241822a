"""How much memory this process may use: physical RAM, or less where a cgroup caps it (a SLURM job's ``--mem``, a
container's limit), where exceeding the cap gets the process killed as surely as exceeding RAM."""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED = 2**62  # cgroup v1 writes "no limit" as a page-rounded 2**63 - 1


def cgroup_limit(text: str) -> int | None:
    """A cgroup memory limit file's value in bytes; None for no limit (v2 ``max``, v1's huge number)."""
    value = text.strip()
    if value == "max" or not value.isdigit() or int(value) >= UNLIMITED:
        return None
    return int(value)


def cgroup_limit_files(proc_self_cgroup: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """The memory limit files that cap a process, from its ``/proc/self/cgroup``: its own group's and every
    parent's, for cgroup v2 (``0::/path``) and v1's memory controller (``N:...memory...:/path``)."""
    files = []
    for line in proc_self_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = root / "memory", "memory.limit_in_bytes"
        else:
            continue
        parts = [p for p in group.split("/") if p]
        files += [base.joinpath(*parts[:depth]) / name for depth in range(len(parts), -1, -1)]
    return files


def memory_limit_bytes(root: Path = CGROUP_ROOT, proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """Physical memory, or the smallest cgroup limit above this process where one is set and readable."""
    limits = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    try:
        files = cgroup_limit_files(proc_self_cgroup.read_text(), root)
    except OSError:  # not Linux, or /proc hidden
        files = []
    for path in files:
        try:
            limit = cgroup_limit(path.read_text())
        except OSError:  # a level outside this namespace, or no memory controller there
            continue
        if limit is not None:
            limits.append(limit)
    return min(limits)
