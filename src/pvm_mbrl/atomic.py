"""Atomic file writes: a crash at any moment leaves the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def temporary_path(path: str | Path) -> Path:
    """Where :func:`atomic_write` writes before renaming: ``NAME.tmp`` beside ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".tmp")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object],
                 verify: Callable[[Path], object] | None = None) -> None:
    """Call ``write`` on a temporary file beside ``path``, fsync it, ``verify(temporary path)`` if given, then
    rename it over ``path``. On any failure (disk full, a failed check, an interrupt) the temporary file is
    removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # already gone, or unremovable: the original error matters more
            tmp.unlink()
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))
