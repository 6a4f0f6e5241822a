"""Metrics per run directory: one JSON line per record and TensorBoard scalars, plus a progress line."""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict

import numpy as np

from pvm_mbrl.rundir import RunDir


class MetricsLogger:
    """Writes a run's metrics file (appended, so resumed runs continue it) and TensorBoard events."""

    def __init__(self, files: RunDir, tensorboard: bool = True):
        self.path = files.metrics_path
        torn = files.metrics_needs_newline()
        self._file = open(self.path, "a")  # noqa: SIM115 - kept open for the run
        if torn:  # a crash cut the last record: the next one starts on its own line instead of extending it
            self._file.write("\n")
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(files.tensorboard))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, "time": time.time(), **{k: float(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in metrics.items():
                self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


class MeanTracker:
    """Accumulates values between log lines and returns their means."""

    def __init__(self):
        self._values: dict[str, list[float]] = defaultdict(list)

    def add(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self._values[key].append(value)

    def pop(self) -> dict[str, float]:
        means = {k: float(np.mean(v)) for k, v in self._values.items() if v}
        self._values.clear()
        return means


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressLine:
    """A periodic line with progress, throughput and ETA, readable in a terminal and in CI logs."""

    def __init__(self, total: int, start: int, label: str = "train", stream=None, unit: str = "env-steps"):
        self.total, self.label, self.unit = total, label, unit
        self.stream = stream or sys.stderr  # looked up now, so a job's redirected stderr (its log) gets the lines
        self._start_step, self._start_time = start, time.time()

    def rate(self, step: int) -> float:
        return (step - self._start_step) / max(time.time() - self._start_time, 1e-9)

    def show(self, step: int, extra: dict[str, float], label: str | None = None) -> None:
        """Print the line; ``label`` replaces the line's own tag for this once (what part of the work is on now)."""
        rate = self.rate(step)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        parts = [f"[{label or self.label}] {step:,}/{self.total:,} ({100 * step / self.total:.0f}%)",
                 f"{rate:.3g} {self.unit}/s", f"ETA {format_duration(eta) if np.isfinite(eta) else '?'}"]
        parts += [f"{k.replace('/', ' ')} {v:.3g}" for k, v in extra.items()]
        print(" | ".join(parts), file=self.stream, flush=True)
