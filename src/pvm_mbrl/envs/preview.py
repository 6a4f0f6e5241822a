"""``pvm-mbrl envs preview FAMILY``: one camera frame per shift suite, side by side in a PNG.

The same seed and the same actions (the suite file's ``preview`` block) are used for every suite, so the
frames show one scene under each suite: a quick look that each suite changes what it should, and only that.
The block may name the ``task`` shown (a family of many tasks, ``dmc``); ``task=`` overrides it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pvm_mbrl.envs.presets import family_task_env_config
from pvm_mbrl.envs.suites import load_suites


def suite_frames(family: str, size: int = 128, seed: int = 0, task: str | None = None) -> dict[str, np.ndarray]:
    """The observed image of each suite after the family's preview steps from ``reset(seed)``."""
    from pvm_mbrl.envs.registry import make_env

    suite_set = load_suites(family)
    steps = int(suite_set.preview.get("steps", 0))
    task = task or suite_set.preview.get("task")
    frames = {}
    for name in suite_set.suites:
        env = make_env(family_task_env_config(family, task, suite=name, size=size), seed)
        try:
            obs, _ = env.reset(seed=seed)
            action = np.asarray(suite_set.preview.get("action", np.zeros(env.action_space.shape)), np.float32)
            for _ in range(steps):
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
            frames[name] = obs["image"]
        finally:
            env.close()
    return frames


def preview(family: str, out: str | Path | None = None, size: int = 128, seed: int = 0,
            task: str | None = None) -> Path:
    """Write the contact sheet (default ``<family>_suites.png``) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = task or load_suites(family).preview.get("task")
    frames = suite_frames(family, size, seed, task)
    out = Path(out or f"{family}_suites.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(frames), figsize=(2.6 * len(frames), 3.0), squeeze=False)
    for ax, (name, image) in zip(axes[0], frames.items(), strict=True):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{family}{':' + task if task else ''}: every suite, seed {seed}, {size}x{size}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
