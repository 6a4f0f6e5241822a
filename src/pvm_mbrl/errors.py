"""Failures the command line reports as one message and exit status 2."""

from __future__ import annotations


class RunError(Exception):
    """A run cannot go on, for a reason its message states with what the user can do (no traceback needed)."""


class CheckpointReadError(RunError):
    """A checkpoint file exists but does not load: truncated or corrupt."""


class CheckpointWriteError(RunError):
    """A checkpoint could not be written (disk full, ...) or was refused (non-finite weights); the one before
    it is kept."""


class DivergenceError(RunError):
    """Training stopped after too many consecutive updates with non-finite losses or gradients."""
