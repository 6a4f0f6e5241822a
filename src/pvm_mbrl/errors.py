"""Failures the command line reports as one message and exit status 2, and interrupts by signal."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

# Each stops a run with a checkpoint, a study with one per running run: Ctrl-C, `kill` (and SLURM's scancel), and
# SIGUSR2, the signal a SLURM job gets before its time limit from submitit (`--signal=USR2@120` in Hydra's launcher).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)

class RunError(Exception):
    """A run cannot go on, for a reason its message states with what the user can do (no traceback needed)."""


class CheckpointReadError(RunError):
    """A checkpoint file exists but does not load: truncated or corrupt."""


class ReplayReadError(RunError):
    """A replay chunk file that a checkpoint counts does not load: truncated, corrupt or not plain arrays."""


class CheckpointWriteError(RunError):
    """A checkpoint could not be written (disk full, ...) or was refused (non-finite weights); the one before
    it is kept."""


class DivergenceError(RunError):
    """Training stopped after too many consecutive updates with non-finite losses or gradients."""


class Interrupted(KeyboardInterrupt):
    """A stop signal while training: handled like Ctrl-C, then exits with 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signum}")
        self.signum = signum


def interrupt_exit_status(interrupt: KeyboardInterrupt) -> int:
    """The shell's convention: 130 after Ctrl-C (SIGINT), 143 after SIGTERM."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


def handle_stop_signals(handler: Callable[[int, Any], Any] | int) -> dict[int, Any]:
    """Handle every stop signal with ``handler``; returns the handlers replaced (for ``restore_signal_handlers``)."""
    return {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}


def raise_interrupt_then(later: Callable[[int, Any], Any] | int) -> Callable[[int, Any], None]:
    """A handler that raises ``Interrupted`` once, having handed later signals to ``later``: a second signal can
    follow at once (a study's launcher passes its own on to workers the terminal's Ctrl-C already reached) and
    must not cut short what the first one started."""

    def handler(signum: int, frame: Any) -> None:  # noqa: ARG001 - signal handler signature
        handle_stop_signals(later)
        raise Interrupted(signum)

    return handler


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
