"""``pvm-mbrl evaluate RUN_DIR``: a run's checkpoint on every shift suite of its env family, for a fixed set of
episode seeds, recording what the study's report needs.

Per run, under ``RUN_DIR/evaluations/``:

* ``episodes.csv``: the tidy table, one row per suite x episode (``TABLE_COLUMNS``);
* ``samples_<suite>.npz``: ``z`` (the posterior's stochastic latent ``z_t``, one-hot flattened, every
  ``sample_every``-th step up to ``samples``) and, for the first ``frames`` of those steps, ``image`` (the
  observation), ``saliency`` (the encoder's ``saliency_map`` of it) and, where the env provides it,
  ``object_mask`` (the target object's pixels);
* ``analysis.json``: what needs the checkpoint's encoder besides episodes: the k-NN digit accuracy before and
  after fine-tuning (pre-trained encoders only; see ``analysis.forgetting``);
* ``step<N>.json``: a summary per suite (as ``evaluate_run`` writes for a single env).

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

from pvm_mbrl.atomic import atomic_write, atomic_write_text
from pvm_mbrl.dreamer.rssm import RSSMState
from pvm_mbrl.envs.registry import make_env, parse_env_name
from pvm_mbrl.envs.suites import SuiteSet, load_suites, suite_families
from pvm_mbrl.evaluation.episodes import run_episodes
from pvm_mbrl.training.loop import EVAL_SEED_OFFSET

EVALUATION_DIR = "evaluations"
EPISODES_FILE = "episodes.csv"
ANALYSIS_FILE = "analysis.json"
STUDY_TABLE = "returns.csv"
ID_SUITE = "id"
SUITE_SEED_BASE = 2 * EVAL_SEED_OFFSET
TABLE_COLUMNS = ("run", "encoder", "finetune", "model", "env", "seed", "suite", "episode", "episode_seed",
                 "env_steps", "return", "length")


def family_suites(env_name: str) -> SuiteSet | None:
    """The shift suites of an env's family (with the task's constants where they are per task), or ``None`` for
    a family without a suite file."""
    family, task = parse_env_name(env_name)
    return load_suites(family, task) if family in suite_families() else None


def suite_names(env_name: str) -> list[str]:
    """Every suite an env is evaluated on: its family's suites, or just ``id``."""
    suites = family_suites(env_name)
    return list(suites.suites) if suites else [ID_SUITE]


def model_identity(encoder_cfg: DictConfig) -> tuple[str, str, str]:
    """``(encoder, finetune, model label)``: a CNN trained from scratch has finetune ``scratch``."""
    name, finetune = str(encoder_cfg.name), str(encoder_cfg.get("finetune") or "scratch")
    return name, finetune, name if finetune == "scratch" else f"{name} {finetune}"


def episode_seeds(episodes: int, seed: int = 0) -> list[int]:
    """The fixed episode seeds every run and suite is evaluated on (``seed`` picks another fixed set)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    return [SUITE_SEED_BASE + seed * 100_000 + k for k in range(episodes)]


class LatentSampler:
    """Collects ``z_t`` every ``every``-th step (up to ``limit``) and the first ``frames`` of those observations."""

    def __init__(self, limit: int, every: int, frames: int):
        if limit < 0 or every < 1 or frames < 0:
            raise ValueError(f"samples must be >= 0, sample_every >= 1 and frames >= 0; got {limit}, {every}, "
                             f"{frames}")
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


def evaluation_dir(run_dir: Path) -> Path:
    return Path(run_dir) / EVALUATION_DIR


def samples_path(run_dir: Path, suite: str) -> Path:
    return evaluation_dir(run_dir) / f"samples_{suite}.npz"


def save_samples(run_dir: Path, suite: str, arrays: dict[str, np.ndarray]) -> Path:
    path = samples_path(run_dir, suite)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    return path


def load_samples(run_dir: Path, suite: str) -> dict[str, np.ndarray]:
    """A suite's recorded latents and frames; FileNotFoundError naming the run and suite when absent."""
    path = samples_path(run_dir, suite)
    if not path.exists():
        raise FileNotFoundError(f"run {run_dir} has no latent sample for suite {suite!r} ({path.name}); "
                                f"re-run `pvm-mbrl evaluate {run_dir}`")
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def write_run_evaluation(run_dir: Path, rows: Sequence[dict], analysis: dict) -> None:
    """Store a run's tidy episode table and its analysis record (the format the study reader expects)."""
    import pandas as pd

    table = pd.DataFrame(list(rows), columns=[c for c in TABLE_COLUMNS if c != "run"])
    out = evaluation_dir(run_dir)
    atomic_write_text(out / EPISODES_FILE, table.to_csv(index=False))
    atomic_write_text(out / ANALYSIS_FILE, json.dumps(analysis, indent=1))


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
    from pvm_mbrl.analysis.forgetting import forgetting
    from pvm_mbrl.encoders.pretrained import PretrainedEncoder
    from pvm_mbrl.encoders.registry import make_encoder

    after = agent.world_model.encoder
    if not isinstance(after, PretrainedEncoder):
        return None
    before = make_encoder(cfg.encoder, after.image_size, cfg.model.depth).to(agent.device)
    return forgetting(before, after, images, seed=seed)


def evaluate_suites(run_dir: str | Path, episodes: int = 200, suites: Sequence[str] | None = None, seed: int = 0,
                    greedy: bool = False, device: str = "auto", samples: int = 256, sample_every: int = 4,
                    frames: int = 16, forgetting_images: int | None = None, study_dir: str | Path | None = None,
                    log=print) -> dict:
    """Evaluate a run's checkpoint on every suite (or ``suites``) and store the results (see the module doc).

    ``forgetting_images`` limits the digit images of the forgetting measure (default: all 1,797; 0 skips it).
    With ``study_dir`` the rows are also added to that study's ``returns.csv``. Returns the summary.
    """
    from pvm_mbrl.evaluation.evaluate import load_agent

    run_dir = Path(run_dir)
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
                         "model": model, "greedy": greedy, "episodes": episodes, "suites": {}}
    start = time.time()
    for suite in chosen:
        suite_cfg = copy.deepcopy(cfg)
        if family_suites(cfg.env.name) is not None:
            suite_cfg.env.suite = suite
        if "masks" in suite_cfg.env:
            suite_cfg.env.masks = True
        if "manifest_dir" in suite_cfg.env:
            suite_cfg.env.manifest_dir = str(run_dir)
        env = make_env(suite_cfg.env, SUITE_SEED_BASE + seed)
        sampler = LatentSampler(samples, sample_every, frames)
        try:
            results = run_episodes(agent, env, seeds, greedy=greedy, observer=sampler)
        finally:
            env.close()
        arrays = sampler.arrays()
        if "image" in arrays:
            arrays["saliency"] = agent.world_model.encoder.saliency_map(
                torch.as_tensor(arrays["image"], device=agent.device)).float().cpu().numpy()
        save_samples(run_dir, suite, arrays)
        rows += [{**identity, "suite": suite, "episode": k, "episode_seed": r["seed"], "return": r["return"],
                  "length": r["length"]} for k, r in enumerate(results)]
        returns = [r["return"] for r in results]
        summary["suites"][suite] = {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}
        log(f"[evaluate] {run_dir} at {counters['env_steps']:,} env steps: mean return {np.mean(returns):.1f} +- "
            f"{np.std(returns):.1f} over {episodes} episodes (suite {suite})")
    analysis = {"env_steps": int(counters["env_steps"]), "episodes": episodes, "suites": chosen,
                "forgetting": None if forgetting_images == 0 else _forgetting(agent, cfg, forgetting_images, seed)}
    write_run_evaluation(run_dir, rows, analysis)
    summary.update(seconds=time.time() - start, forgetting=analysis["forgetting"])
    out = evaluation_dir(run_dir) / f"step{counters['env_steps']}.json"
    atomic_write_text(out, json.dumps(summary, indent=1))
    if study_dir is not None:
        append_to_study_table(Path(study_dir), run_dir, rows)
    return summary
