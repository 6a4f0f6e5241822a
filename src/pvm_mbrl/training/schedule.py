"""When the training loop acts: DreamerV3's small ``Every`` / ``Ratio`` helpers instead of hand-kept counters."""

from __future__ import annotations


class Every:
    """True once each time ``step`` reaches the next multiple of ``interval``; the multiples are absolute, so a
    resumed run keeps the schedule it had (logs, evaluations and checkpoints at the same env steps)."""

    def __init__(self, interval: int, start: int = 0):
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self.interval = interval
        self.next = (start // interval + 1) * interval

    def __call__(self, step: int) -> bool:
        if step < self.next:
            return False
        self.next = (step // self.interval + 1) * self.interval
        return True


class Ratio:
    """Work owed at a fixed ratio to progress (updates per env step), the fraction carried to the next step."""

    def __init__(self, per_step: float, owed: float = 0.0):
        if not per_step > 0:
            raise ValueError(f"per_step must be > 0, got {per_step}")
        self.per_step, self.owed = per_step, owed

    def add(self, steps: float) -> None:
        self.owed += steps * self.per_step

    def take(self) -> bool:
        """Whether one unit of work is owed (and count it done)."""
        if self.owed < 1.0:
            return False
        self.owed -= 1.0
        return True
