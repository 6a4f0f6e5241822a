"""The report's figures as PNG files (matplotlib, Agg backend), from plain arrays so they can be drawn from any
study: curves with bands (paper Figs. 2-3), grouped bars with error bars (Figs. 4-5), UMAP scatters (Fig. 6) and
saliency overlays (Fig. 7). Each function writes ``path`` and returns it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402

Band = tuple[np.ndarray, np.ndarray, np.ndarray]
"""A curve with a band: (steps, mean, spread)."""


def _colours(names: Sequence[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_curves(panels: Mapping[str, Mapping[str, Band]], ylabel: str | Mapping[str, str], path: Path,
                title: str = "") -> Path:
    """One panel per entry of ``panels`` ({panel title: {model: (steps, mean, spread)}}): mean line, +- band."""
    models = list(dict.fromkeys(m for curves in panels.values() for m in curves))
    colours = _colours(models)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items(), strict=True):
        for model, (steps, mean, spread) in curves.items():
            ax.plot(steps, mean, color=colours[model], label=model, lw=1.6)
            ax.fill_between(steps, mean - spread, mean + spread, color=colours[model], alpha=0.2, lw=0)
        ax.set_title(panel)
        ax.set_xlabel("env steps")
        ax.set_ylabel(ylabel if isinstance(ylabel, str) else ylabel[panel])
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_bars(groups: Mapping[str, Mapping[str, tuple[float, float]]], ylabel: str, path: Path,
              title: str = "") -> Path:
    """Grouped bars: one group per entry of ``groups`` ({group: {model: (mean, error)}}), black error bars
    (a NaN error draws none)."""
    models = list(dict.fromkeys(m for bars in groups.values() for m in bars))
    colours = _colours(models)
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) * max(len(models), 2) * 0.5 + 2), 3.8))
    for i, model in enumerate(models):
        xs = [g for g, bars in enumerate(groups.values()) if model in bars]
        means = [bars[model][0] for bars in groups.values() if model in bars]
        errors = np.array([bars[model][1] for bars in groups.values() if model in bars], dtype=float)
        centres = np.array(xs) + (i - (len(models) - 1) / 2) * width
        ax.bar(centres, means, width, color=colours[model], label=model)
        # a zero-length bar would still draw its caps and read as "no spread"; NaN (e.g. one seed) means unknown
        drawn = np.isfinite(errors)
        if drawn.any():
            ax.errorbar(centres[drawn], np.array(means)[drawn], yerr=errors[drawn], fmt="none", ecolor="black",
                        capsize=3)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylabel(ylabel)
    # beside the axes: bars may fill any corner (all negative early in training, all near 1 late)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_embeddings(embeddings: Mapping[str, tuple[np.ndarray, int, str]], path: Path,
                    labels: tuple[str, str] = ("ID", "hard OOD")) -> Path:
    """One scatter per model of a 2-D embedding whose first ``n_first`` rows are ID (blue), the rest OOD (pink);
    ``embeddings`` maps model -> (points, n_first, caption)."""
    fig, axes = plt.subplots(1, len(embeddings), figsize=(3.6 * len(embeddings), 3.8), squeeze=False)
    for ax, (model, (points, n_first, caption)) in zip(axes[0], embeddings.items(), strict=True):
        ax.scatter(*points[:n_first].T, s=6, color="tab:blue", alpha=0.6, label=labels[0])
        ax.scatter(*points[n_first:].T, s=6, color="hotpink", alpha=0.6, label=labels[1])
        ax.set_title(f"{model}\n{caption}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=8, loc="best", markerscale=2)
    return _save(fig, path)


def plot_attention(frames: Mapping[str, Sequence[tuple[str, np.ndarray, np.ndarray]]], path: Path) -> Path:
    """Saliency over frames: one column per model, one row per (row label, image HxWx3, saliency HxW) entry."""
    rows = max(len(entries) for entries in frames.values())
    fig, axes = plt.subplots(rows, len(frames), figsize=(2.6 * len(frames), 2.6 * rows), squeeze=False)
    for column, (model, entries) in enumerate(frames.items()):
        for row in range(rows):
            ax = axes[row][column]
            ax.set_xticks([])
            ax.set_yticks([])
            if row >= len(entries):
                ax.axis("off")
                continue
            label, image, saliency = entries[row]
            ax.imshow(image)
            ax.imshow(saliency, cmap="jet", alpha=0.45, vmin=0, vmax=1,
                      extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5))
            if row == 0:
                ax.set_title(model, fontsize=9)
            if column == 0:
                ax.set_ylabel(label)
    return _save(fig, path)
