"""``pvm-mbrl evaluate RUN_DIR``: a run's checkpoint on every shift suite of its env family, for a fixed set of
episode seeds, recording what the study's report needs.

Per run, in its evaluation files (``pvm_mbrl.rundir``):

* the episode table: the tidy table, one row per suite x episode (``TABLE_COLUMNS``);
* a sample file per suite: ``z`` (the posterior's stochastic latent ``z_t``, one-hot flattened, every
  ``sample_every``-th step up to ``samples``) and, for the first ``frames`` of those steps, ``image`` (the
  observation), ``saliency`` (the encoder's ``saliency_map`` of it) and, where the env provides it,
  ``object_mask`` (the target object's pixels);
* the analysis record: what needs the checkpoint's encoder besides episodes: the k-NN digit accuracy before and
  after fine-tuning (pre-trained encoders only; see ``evaluation.forgetting``);
* a summary per suite at the checkpoint's env step.

Every suite uses the same episode seeds (``episode_seeds``), as the paper evaluates "the same 200 episodes for each
distribution shift", and they never meet training or training-time evaluation seeds. A family without a suite file
is evaluated as a single ``id`` suite with no normalisation constants; ``dmc``'s constants are per task.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from pvm_mbrl.atomic import atomic_write_text
from pvm_mbrl.dreamer.rssm import RSSMState
from pvm_mbrl.envs.registry import make_env
from pvm_mbrl.evaluation.settings import (
    STUDY_TABLE,
    EvaluationSettings,
    family_suites,
    model_identity,
    suite_names,
)
from pvm_mbrl.rollout.episodes import EVAL_SEED_OFFSET, run_episodes
from pvm_mbrl.rollout.loading import load_agent
from pvm_mbrl.rundir import TABLE_COLUMNS, RunDir
from pvm_mbrl.training.logger import ProgressLine

SUITE_SEED_BASE = 2 * EVAL_SEED_OFFSET


def episode_seeds(episodes: int, seed: int = 0) -> list[int]:
    """The fixed episode seeds every run and suite is evaluated on (``seed`` picks another fixed set)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    return [SUITE_SEED_BASE + seed * 100_000 + k for k in range(episodes)]


class LatentSampler:
    """Collects ``z_t`` every ``every``-th step (up to ``limit``) and the first ``frames`` of those observations."""

    def __init__(self, limit: int, every: int, frames: int):
        self.limit, self.every, self.frames = limit, every, frames
        self.z: list[np.ndarray] = []
        self.images: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []

    def __call__(self, episode: int, step: int, obs: dict, info: dict, latent: RSSMState) -> None:
        if step % self.every or len(self.z) >= self.limit:
            return
        self.z.append(latent.stoch.flatten(1)[0].float().cpu().numpy())
        if len(self.images) < self.frames:
            self.images.append(np.asarray(obs["image"]))
            if "object_mask" in info:
                self.masks.append(np.asarray(info["object_mask"], dtype=bool))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"z": np.stack(self.z) if self.z else np.zeros((0, 0), np.float32)}
        if self.images:
            out["image"] = np.stack(self.images)
        if self.masks:
            out["object_mask"] = np.stack(self.masks)
        return out


def append_to_study_table(study_dir: Path, run_dir: Path, rows: Sequence[dict]) -> Path:
    """Add a run's rows to ``STUDY_DIR/returns.csv``, replacing rows an earlier evaluation of it left there."""
    import pandas as pd

    path = Path(study_dir) / STUDY_TABLE
    name = os.path.relpath(Path(run_dir).resolve(), Path(study_dir).resolve())
    new = pd.DataFrame([{"run": name, **row} for row in rows], columns=list(TABLE_COLUMNS))
    if path.exists():
        old = pd.read_csv(path)
        new = pd.concat([old[old["run"] != name], new], ignore_index=True)
    atomic_write_text(path, new.to_csv(index=False))
    return path


def _forgetting(agent, cfg: DictConfig, images: int | None, seed: int) -> dict | None:
    """k-NN digit accuracy before (fresh weights) and after fine-tuning (the checkpoint); pre-trained encoders only."""
    from pvm_mbrl.encoders.pretrained import PretrainedEncoder
    from pvm_mbrl.encoders.registry import make_encoder
    from pvm_mbrl.evaluation.forgetting import forgetting

    after = agent.world_model.encoder
    if not isinstance(after, PretrainedEncoder):
        return None
    before = make_encoder(cfg.encoder, after.image_size, cfg.model.depth).to(agent.device)
    return forgetting(before, after, images, seed=seed)


class EpisodeProgress:
    """A progress line (episodes/s, ETA over every suite) at most every ``every`` seconds, and after the last."""

    def __init__(self, total: int, every: float = 60.0):
        self.line, self.every = ProgressLine(total, 0, label="evaluate", unit="episodes"), every
        self.done, self.last_shown = 0, time.time()

    def episode_done(self, suite: str, result: dict) -> None:
        self.done += 1
        if self.done == self.line.total or time.time() - self.last_shown >= self.every:
            self.line.show(self.done, {"return": result["return"]}, label=f"evaluate {suite}")
            self.last_shown = time.time()


def evaluate_suites(run_dir: str | Path, settings: EvaluationSettings | None = None,
                    suites: Sequence[str] | None = None, device: str = "auto", study_dir: str | Path | None = None,
                    log=print) -> dict:
    """Evaluate a run's checkpoint on every suite (or ``suites``) and store the results (see the module doc).

    With ``study_dir`` the rows are also added to that study's ``returns.csv``. Returns the summary.
    """
    run_dir, files = Path(run_dir), RunDir(run_dir)
    settings = settings or EvaluationSettings()
    episodes, seed = settings.episodes, settings.seed
    seeds = episode_seeds(episodes, seed)
    agent, counters = load_agent(run_dir, device)
    cfg = agent.cfg
    known = suite_names(cfg.env.name)
    chosen = list(suites) if suites else known
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise ValueError(f"run {run_dir} ({cfg.env.name}) has no suite(s) {', '.join(unknown)}; its suites: "
                         f"{', '.join(known)}")
    encoder, finetune, model = model_identity(cfg.encoder)
    identity = {"encoder": encoder, "finetune": finetune, "model": model, "env": str(cfg.env.name),
                "seed": int(cfg.seed), "env_steps": int(counters["env_steps"])}
    rows, summary = [], {"run_dir": str(run_dir), "env_steps": counters["env_steps"], "env": str(cfg.env.name),
                         "model": model, "greedy": settings.greedy, "episodes": episodes, "suites": {}}
    start = time.time()
    progress = EpisodeProgress(episodes * len(chosen))
    for suite in chosen:
        suite_cfg = copy.deepcopy(cfg)
        if family_suites(cfg.env.name) is not None:
            suite_cfg.env.suite = suite
        if "masks" in suite_cfg.env:
            suite_cfg.env.masks = True
        if "manifest_dir" in suite_cfg.env:
            suite_cfg.env.manifest_dir = str(run_dir)
        env = make_env(suite_cfg.env, SUITE_SEED_BASE + seed)
        sampler = LatentSampler(settings.samples, settings.sample_every, settings.frames)
        try:
            results = run_episodes(agent, env, seeds, greedy=settings.greedy, observer=sampler,
                                   on_episode=lambda result, suite=suite: progress.episode_done(suite, result))
        finally:
            env.close()
        arrays = sampler.arrays()
        if "image" in arrays:
            arrays["saliency"] = agent.world_model.encoder.saliency_map(
                torch.as_tensor(arrays["image"], device=agent.device)).float().cpu().numpy()
        files.save_samples(suite, arrays)
        rows += [{**identity, "suite": suite, "episode": k, "episode_seed": r["seed"], "return": r["return"],
                  "length": r["length"]} for k, r in enumerate(results)]
        returns = [r["return"] for r in results]
        summary["suites"][suite] = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}
        log(f"[evaluate] {run_dir} at {counters['env_steps']:,} env steps: mean return {np.mean(returns):.1f} +- "
            f"{np.std(returns):.1f} over {episodes} episodes (suite {suite})")
    images = settings.forgetting_images
    analysis = {"env_steps": int(counters["env_steps"]), "episodes": episodes, "suites": chosen,
                "forgetting": None if images == 0 else _forgetting(agent, cfg, images, seed)}
    files.write_evaluation(rows, analysis)
    summary.update(seconds=time.time() - start, forgetting=analysis["forgetting"])
    atomic_write_text(files.evaluation_summary(counters["env_steps"]), json.dumps(summary, indent=1))
    if study_dir is not None:
        append_to_study_table(Path(study_dir), run_dir, rows)
    return summary
