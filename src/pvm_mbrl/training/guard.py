"""The divergence guard: counts the updates the agent skipped for non-finite losses or gradients, and stops the
run after ``divergence_patience`` of them in a row, naming the loss terms that went non-finite.

``Agent.train_step`` itself never applies such an update (see its docstring); this keeps the run from spinning on
forever once every update is skipped, and keeps a diverging policy's NaN actions out of the simulator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pvm_mbrl.dreamer.agent import NONFINITE_FLAG, NONFINITE_PREFIX
from pvm_mbrl.errors import DivergenceError


class DivergenceGuard:
    def __init__(self, patience: int):
        self.patience = int(patience)
        self.streak = 0             # consecutive skipped updates, up to the latest
        self.skipped = 0            # skipped updates since this process started
        self.nonfinite_actions = 0  # policy actions replaced by zeros since this process started
        self.terms: dict[str, int] = {}  # the current streak's non-finite terms, with how often each was
        self.kept = "none had been written yet"  # the last checkpoint, as the stop message names it

    def checkpointed(self, path: Path, env_steps: int) -> None:
        """Note the checkpoint that a stop would keep."""
        self.kept = f"{path}, at env step {env_steps:,}"

    @property
    def healthy(self) -> bool:
        """Whether the latest update was applied (checkpoints wait for one: a run that only skips updates may
        be stuck on weights that are finite but ruined)."""
        return self.streak == 0

    def observe(self, metrics: dict[str, float]) -> dict[str, float]:
        """Account for one update's metrics; returns those worth averaging into the log (a skipped update's
        losses are inf or NaN: only its flags). Raises :class:`DivergenceError` at ``patience`` in a row."""
        if not metrics.get(NONFINITE_FLAG):
            self.streak = 0
            self.terms.clear()
            return metrics
        self.streak += 1
        self.skipped += 1
        flags = {k: v for k, v in metrics.items() if k == NONFINITE_FLAG or k.startswith(NONFINITE_PREFIX)}
        for key in flags:
            if key.startswith(NONFINITE_PREFIX):
                term = key.removeprefix(NONFINITE_PREFIX)
                self.terms[term] = self.terms.get(term, 0) + 1
        if self.streak >= self.patience:
            raise DivergenceError(self.message())
        return flags

    def message(self) -> str:
        terms = ", ".join(f"{term} ({count} of them)" for term, count in
                          sorted(self.terms.items(), key=lambda item: -item[1])) or "unknown"
        return (f"training diverged: {self.streak} consecutive updates had non-finite (inf or NaN) values, in the "
                f"loss terms: {terms}. Each was skipped (weights unchanged), and checkpoints wait for an applied "
                f"update, so the last good checkpoint is kept ({self.kept}). Check the settings that scale losses "
                f"or steps (loss_scales, optim.lr, optim.warmup, precision) and the data (non-finite rewards or "
                f"observations); divergence_patience (now {self.patience}) is how many such updates in a row stop "
                f"a run")

    def finite_actions(self, actions: np.ndarray) -> np.ndarray:
        """``actions`` with non-finite entries (a diverged policy's) set to zero and counted: MuJoCo stops the
        whole run on a NaN control (``PhysicsError``), before the guard could name the cause."""
        bad = ~np.isfinite(actions)
        if not bad.any():
            return actions
        self.nonfinite_actions += int(bad.reshape(len(actions), -1).any(-1).sum())
        return np.where(bad, 0.0, actions).astype(actions.dtype)

    def metrics(self) -> dict[str, float]:
        """Totals for the periodic log line."""
        return {"train/skipped_updates": float(self.skipped), "train/nonfinite_actions": float(self.nonfinite_actions)}

    def progress(self) -> dict[str, float]:
        """For the progress line: the skipped updates, once there are any."""
        return {"skipped": float(self.skipped)} if self.skipped else {}
