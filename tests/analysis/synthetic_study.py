"""A synthetic table-top study whose answers are known: run directories as training and evaluation write them
(real configs, metrics lines, the evaluation files through ``RunDir.write_evaluation``/``save_samples``), with
returns, curves, latents and saliency maps drawn so that every number of the report can be checked by hand.

Per model (3 seeds each), seed ``s``'s episodes have normalised scores ``SCORES[model][suite] + 0.01 (s - 1)``
+- a spread that cancels over its episodes, so the mean over seeds is exactly ``SCORES`` with a standard error of
0.01 / sqrt(3), and the relative drops are hand-computable (the CNN's hard-OOD drop is (0.8 + 0.05) / 0.8 =
106.25%, the paper's "106%").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pvm_mbrl.envs.suites import load_suites
from pvm_mbrl.evaluation.settings import model_identity
from pvm_mbrl.rundir import RunDir
from pvm_mbrl.training.config import compose_config, to_yaml

MODELS = {  # model label -> encoder overrides
    "cnn": [],
    "efficientnet_lite0 full": ["encoder=efficientnet_lite0", "encoder.finetune=full"],
    "efficientnet_lite0 frozen": ["encoder=efficientnet_lite0", "encoder.finetune=frozen"],
    "mobilenet_v2 partial": ["encoder=mobilenet_v2", "encoder.finetune=partial"],
}
SCORES = {  # normalised return per suite
    "cnn": {"id": 0.8, "easy_ood": 0.75, "hard_ood": -0.05},
    "efficientnet_lite0 full": {"id": 0.75, "easy_ood": 0.7, "hard_ood": 0.2},
    "efficientnet_lite0 frozen": {"id": 0.6, "easy_ood": 0.58, "hard_ood": 0.5},
    "mobilenet_v2 partial": {"id": 0.7, "easy_ood": 0.66, "hard_ood": 0.55},
}
OOD_SHIFT = {"cnn": 6.0, "efficientnet_lite0 full": 3.0, "efficientnet_lite0 frozen": 0.0,
             "mobilenet_v2 partial": 0.5}  # distance of hard-OOD latents from ID ones, in units of their spread
OBJECTNESS = {"cnn": 0.1, "efficientnet_lite0 full": 0.3, "efficientnet_lite0 frozen": 0.9,
              "mobilenet_v2 partial": 0.8}  # share of the saliency placed on the object
FORGETTING = {"efficientnet_lite0 full": (0.9, 0.3), "efficientnet_lite0 frozen": (0.9, 0.9),
              "mobilenet_v2 partial": (0.85, 0.7)}
SEEDS = (0, 1, 2)
STEPS = np.arange(1_000, 101_000, 1_000)
EPISODES = 6
SIZE = 64


def _metrics(model_index: int, seed: int, rng: np.random.Generator) -> list[dict]:
    """Logistic learning curves (later for later models) with seed noise, and decaying losses."""
    suite = load_suites("tabletop").get("id")
    midpoint = 40_000 + 5_000 * model_index + 2_000 * seed
    records = []
    for step in STEPS:
        score = 0.8 / (1 + np.exp(-(step - midpoint) / 8_000)) + rng.normal(0, 0.02)
        records.append({"step": int(step), "episode/return": suite.random_return + score * (suite.max_return -
                                                                                              suite.random_return),
                        "loss/rec": 200 * np.exp(-step / 10_000) + 20 + model_index,
                        "loss/rew": 0.5 * np.exp(-step / 20_000) + 0.01 * model_index,
                        "loss/dyn": 3 + np.sin(step / 30_000) + 0.2 * model_index})
    return records


def _frames(model: str, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    """Images with a bright square object, its mask, and a saliency map putting ``OBJECTNESS`` on it."""
    images = rng.integers(0, 80, (count, SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((count, SIZE, SIZE), dtype=bool)
    saliency = rng.uniform(0, 1, (count, SIZE, SIZE)).astype(np.float32) * (1 - OBJECTNESS[model])
    for i in range(count):
        y, x = rng.integers(8, SIZE - 24, 2)
        masks[i, y:y + 16, x:x + 16] = True
        images[i][masks[i]] = (220, 60, 40)
        saliency[i][masks[i]] += OBJECTNESS[model] * 8
    return {"image": images, "object_mask": masks, "saliency": saliency / saliency.max((1, 2), keepdims=True)}


def make_study(root: Path) -> Path:
    """Write the synthetic study under ``root``; returns ``root``."""
    suites = load_suites("tabletop")
    for model_index, (model, overrides) in enumerate(MODELS.items()):
        for seed in SEEDS:
            rng = np.random.default_rng([model_index, seed])
            run = root / model.replace(" ", "_") / f"seed{seed}"
            cfg = compose_config(["env=tabletop", f"env.size={SIZE}", *overrides, f"seed={seed}", f"run_dir={run}"])
            assert model_identity(cfg.encoder)[2] == model
            run.mkdir(parents=True)
            (run / "config.yaml").write_text(to_yaml(cfg))
            (run / "status.json").write_text(json.dumps({"state": "finished", "env_steps": int(STEPS[-1]),
                                                         "total_steps": int(STEPS[-1])}))
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _metrics(model_index, seed, rng)))
            (run / "checkpoint.pt").write_bytes(b"synthetic: never loaded by the report")
            rows = []
            spread = np.tile([-0.05, 0.05], EPISODES // 2)  # cancels over the episodes
            for name, suite in suites.suites.items():
                scores = SCORES[model][name] + 0.01 * (seed - 1) + spread
                returns = suite.random_return + scores * (suite.max_return - suite.random_return)
                rows += [{"encoder": cfg.encoder.name, "finetune": model_identity(cfg.encoder)[1], "model": model,
                          "env": cfg.env.name, "seed": seed, "suite": name, "episode": k, "episode_seed": 2_000_000 + k,
                          "env_steps": int(STEPS[-1]), "return": float(r), "length": 50} for k, r in enumerate(returns)]
                shift = OOD_SHIFT[model] if name == "hard_ood" else 0.0
                z = rng.normal(0, 1, (120, 16)).astype(np.float32)
                z[:, 0] += shift
                RunDir(run).save_samples(name, {"z": z, **_frames(model, rng, 6)})
            before_after = FORGETTING.get(model)
            forgetting = ({"before": before_after[0] + 0.01 * seed, "after": before_after[1] + 0.01 * seed,
                           "images": 1797, "k": 5} if before_after else None)
            RunDir(run).write_evaluation(rows, {"env_steps": int(STEPS[-1]), "episodes": EPISODES,
                                                "suites": list(suites.suites), "forgetting": forgetting})
    return root
