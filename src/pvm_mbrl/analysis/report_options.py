"""The report's settings: each default defined here once (the paper's windows, in env steps)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportOptions:
    """Settings of the analyses; the defaults are the paper's (windows in env steps)."""

    curve_key: str = "episode/return"
    curve_window: float = 50_000
    threshold_window: float = 20_000
    threshold_fraction: float = 0.9
    loss_window: float = 2_000
    permutations: int = 10_000
    bootstrap: int = 50_000
    umap_points: int = 300
    seed: int = 0
    notes: tuple[str, ...] = ()  # shown under the title (e.g. a study's "too small for conclusions")
