"""Checkpoints: written atomically and verified, the one before kept beside them, read with a clear error.

Saving writes ``checkpoint.pt.tmp``, fsyncs it, loads it back, and only then renames it over ``checkpoint.pt``;
before that the current checkpoint is hard-linked to ``checkpoint.prev.pt``. So at every moment ``checkpoint.pt``
is a complete checkpoint, and after a save ``checkpoint.prev.pt`` holds the one before it: the way back when the
newest turns out unusable.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from pvm_mbrl.atomic import atomic_write, temporary_path
from pvm_mbrl.errors import CheckpointReadError, CheckpointWriteError, RunError

SPACE_MARGIN = 1.1  # the next checkpoint is about the size of the last; warn below this multiple of it free


def previous_checkpoint_path(path: str | Path) -> Path:
    """``checkpoint.prev.pt`` beside ``checkpoint.pt``: the checkpoint before the newest."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def format_bytes(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def nonfinite_tensors(state: object, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in a nested checkpoint state that hold inf or NaN."""
    found: list[tuple[str, torch.Tensor]] = []

    def walk(value: object, name: str) -> None:
        if isinstance(value, torch.Tensor):
            if value.is_floating_point() or value.is_complex():
                found.append((name, value))
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{name}.{key}" if name else str(key))
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{name}[{i}]")

    walk(state, prefix)
    if not found:
        return []
    by_device: dict[torch.device, list[int]] = {}
    for i, (_, tensor) in enumerate(found):
        by_device.setdefault(tensor.device, []).append(i)
    bad = []
    for indices in by_device.values():  # one device-to-host transfer per device
        flags = torch.stack([torch.isfinite(found[i][1]).all() for i in indices]).tolist()
        bad += [found[i][0] for i, ok in zip(indices, flags, strict=True) if not ok]
    return sorted(bad)


def free_space_warning(path: str | Path) -> str | None:
    """A warning when the filesystem of ``path`` has less free space than the checkpoint there takes (the next
    one is about as large), counting the space that replacing ``checkpoint.prev.pt`` gives back; else None."""
    path, previous = Path(path), previous_checkpoint_path(path)
    if not path.exists():
        return None
    size, available = path.stat().st_size, shutil.disk_usage(path.parent).free
    if previous.exists() and not previous.samefile(path):
        available += previous.stat().st_size  # given back when the current checkpoint becomes the previous one
    if available >= SPACE_MARGIN * size:
        return None
    return (f"warning: {format_bytes(available)} left for the next checkpoint in {path.parent} (free space, plus "
            f"{previous.name} that it replaces), and the last one took {format_bytes(size)}: the next may not fit. "
            f"Free some space; if it does not fit, the run stops with the last checkpoint kept")


def keep_previous(path: Path) -> None:
    """Make ``checkpoint.prev.pt`` the current ``checkpoint.pt`` (a hard link where the filesystem has them,
    else a copy), replacing the older one; ``checkpoint.pt`` itself never goes missing."""
    if not path.exists():
        return
    previous = previous_checkpoint_path(path)
    staged = temporary_path(previous)
    with contextlib.suppress(FileNotFoundError):
        staged.unlink()
    try:
        try:
            os.link(path, staged)
        except OSError:  # no hard links here (some network and FUSE filesystems): copy instead
            shutil.copyfile(path, staged)
        os.replace(staged, previous)
    except BaseException:
        with contextlib.suppress(OSError):
            staged.unlink()
        raise


def kept_description(path: Path) -> str:
    return f"the previous checkpoint {path} is intact" if path.exists() else "no checkpoint was written before"


def write_failure_message(path: Path, error: OSError) -> str:
    """What went wrong writing checkpoint ``path``, what is kept, and what to do."""
    kept = kept_description(path)
    message = f"could not write checkpoint {path}: {error.strerror or error}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        with contextlib.suppress(OSError):
            message += f" ({format_bytes(shutil.disk_usage(path.parent).free)} free)"
        return (f"{message}. The partial file was removed and {kept}: free disk space (or move the run directory "
                f"to a larger disk) and re-run the same command to resume")
    return f"{message}. The partial file was removed and {kept}"


class _RecordingWriter:
    """Forwards writes to a file and keeps the OSError of a failed one: ``torch.save`` swallows it (disk full
    surfaces as a RuntimeError "unexpected pos ..."), so :func:`torch_save` raises it instead."""

    def __init__(self, file: BinaryIO):
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def torch_save(state: dict, file: BinaryIO) -> None:
    """``torch.save`` that raises the file's own OSError (ENOSPC, EIO, ...) when a write fails."""
    writer = _RecordingWriter(file)
    try:
        torch.save(state, writer)
    except RuntimeError:
        if writer.error is not None:
            raise writer.error from None
        raise


def save_checkpoint(path: str | Path, state: dict) -> int:
    """Write ``state`` to ``path`` (see the module docstring); returns the file's size in bytes.

    Raises :class:`CheckpointWriteError` without touching ``path`` when a floating-point tensor of ``state`` is
    non-finite, when writing fails (disk full: the temporary file is removed) or when the written file does not
    load back.
    """
    path = Path(path)
    bad = nonfinite_tensors(state)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CheckpointWriteError(f"not writing checkpoint {path}: non-finite values (inf or NaN) in {shown}; "
                                   f"{kept_description(path)}")
    try:
        keep_previous(path)
        atomic_write(path, lambda f: torch_save(state, f), verify=lambda tmp: load_checkpoint(tmp, mmap=True))
    except OSError as error:
        raise CheckpointWriteError(write_failure_message(path, error)) from error
    except CheckpointReadError as error:
        raise CheckpointWriteError(f"the checkpoint just written does not load back, so it was not kept "
                                   f"({error}); {path} is unchanged") from error
    return path.stat().st_size


@contextlib.contextmanager
def writing_checkpoint(path: Path, mark_failed: Callable[[RunError], None]) -> Iterator[None]:
    """Around writing a checkpoint and what it points at (replay chunks): warns first when the disk looks too
    full for it; an OSError (disk full, ...) becomes a :class:`CheckpointWriteError` saying what to do, and
    ``mark_failed`` sees every such error before it propagates."""
    warning = free_space_warning(path)
    if warning:
        print(f"[checkpoint] {warning}", file=sys.stderr, flush=True)
    try:
        yield
    except OSError as error:
        failure = CheckpointWriteError(write_failure_message(path, error))
        mark_failed(failure)
        raise failure from error
    except RunError as error:
        mark_failed(error)
        raise


def read_failure_message(path: Path, error: BaseException) -> str:
    """What is wrong with checkpoint ``path`` and the way back (its previous checkpoint, if kept)."""
    size = format_bytes(path.stat().st_size) if path.exists() else "?"
    message = (f"checkpoint {path} cannot be loaded: the file is truncated or corrupt ({size}; "
               f"{type(error).__name__}: {str(error).split('. ')[0]}).")
    previous = previous_checkpoint_path(path)
    if path.name.endswith(".tmp") or path == previous or not previous.exists():
        return (f"{message} There is no {previous.name} beside it to go back to: move the run directory away "
                f"(or use another run_dir) to start over")
    return (f"{message} To resume or evaluate from the checkpoint before it, move {previous.name} over it: "
            f"mv {previous} {path}")


def check_archive(path: Path) -> None:
    """Read every member of a checkpoint's zip archive back against its CRC (``torch.load`` checks none: a
    flipped byte in a tensor would load silently). A file that is no zip archive is left to ``torch.load``."""
    if not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
    if bad is not None:
        raise ValueError(f"{bad} fails its CRC check")


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", mmap: bool = False) -> dict:
    """The checkpoint at ``path``; a truncated or corrupt file raises :class:`CheckpointReadError`, naming it
    and the way back. ``mmap`` maps the tensors' storage from the file instead of reading it into memory."""
    path = Path(path)
    try:
        check_archive(path)
        state = torch.load(path, map_location=device, weights_only=False, mmap=mmap)
    except (FileNotFoundError, MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - a cut zip, a bad pickle, an early EOF: all an unreadable file
        raise CheckpointReadError(read_failure_message(path, error)) from error
    if not isinstance(state, dict):
        raise CheckpointReadError(read_failure_message(path, TypeError(f"holds a {type(state).__name__}, "
                                                                       f"not a checkpoint")))
    return state


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
