"""Directory locks: one writer per run directory (and per study directory) at a time.

``fcntl.flock`` locks belong to the open file, so the kernel releases them when the holder dies (even by SIGKILL):
a crashed job never leaves a lock that needs cleaning up. The lock file also records who holds it, so a refused
writer can say which process on which host is in the way. Locks are re-entrant within one process (a study job
locks its run directory, then the trainer inside it locks it again). On network file systems flock is only as good
as the file system's lock support (NFSv4 and Lustre with ``flock`` mount options provide it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".lock"

_held: dict[Path, tuple[int, int]] = {}  # lock path -> (file descriptor, nesting depth) in this process


class LockedError(RuntimeError):
    """Another process holds the lock."""


def lock_holder(lock_path: Path) -> dict | None:
    """Who last took the lock (``host``, ``pid``, ``purpose``, ``since``), or None when unknown."""
    try:
        return json.loads(lock_path.read_text() or "null")
    except (OSError, json.JSONDecodeError):
        return None


def is_locked(directory: str | Path) -> bool:
    """Whether a process (this one included) holds ``directory``'s lock right now."""
    lock_path = Path(directory).resolve() / LOCK_NAME
    if lock_path in _held:
        return True
    if not lock_path.exists():
        return False
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock taken above
    return False


def describe_holder(holder: dict | None) -> str:
    if not holder:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
    return f"pid {holder.get('pid')} on {holder.get('host')} ({holder.get('purpose')}, since {since})"


@contextlib.contextmanager
def directory_lock(directory: str | Path, purpose: str) -> Iterator[Path]:
    """Hold ``directory/.lock`` for the block; LockedError (naming the holder) when another process has it."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    lock_path = directory / LOCK_NAME
    if lock_path in _held:
        fd, depth = _held[lock_path]
        _held[lock_path] = (fd, depth + 1)
        try:
            yield directory
        finally:
            _held[lock_path] = (fd, _held[lock_path][1] - 1)
        return
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockedError(f"{directory} is in use by {describe_holder(lock_holder(lock_path))}; wait for it to "
                          f"finish or stop it (two writers would corrupt the directory)") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "purpose": purpose,
                             "since": time.time()}).encode())
    _held[lock_path] = (fd, 1)
    try:
        yield directory
    finally:
        depth = _held[lock_path][1] - 1
        if depth:
            _held[lock_path] = (fd, depth)
        else:
            del _held[lock_path]
            os.close(fd)
