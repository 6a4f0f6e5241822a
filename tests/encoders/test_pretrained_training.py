"""Short training runs with pre-trained encoders loaded from a directory, as a user with real weights runs them."""

import json

import pytest
from tests.conftest import TINY

from pvm_mbrl.training.config import compose_config
from pvm_mbrl.training.loop import Trainer

pytestmark = pytest.mark.slow

RUN = ["env.size=64", "encoder.decoder_size=32", "steps=96", "prefill=48", "train_ratio=16", "log_every=96",
       "eval_every=100000", "eval_episodes=1", "checkpoint_every=96", "env.action_repeat=4"]


def losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {k: v for row in rows for k, v in row.items() if k.startswith("loss/")}


@pytest.mark.parametrize("name, mode", [("dinov2", "partial"), ("clip", "full"), ("dinov2", "frozen")])
def test_vit_encoders_train_end_to_end_from_a_local_directory(tmp_path, tiny_dinov2_dir, tiny_clip_dir, name, mode):
    weights = tiny_dinov2_dir if name == "dinov2" else tiny_clip_dir
    cfg = compose_config([*TINY, *RUN, f"encoder={name}", f"encoder.weights={weights}",
                          f"encoder.finetune={mode}", f"run_dir={tmp_path / 'run'}"])
    trainer = Trainer(cfg)
    trainer.run()
    assert trainer.updates > 0 and all(v == v for v in losses(trainer.run_dir).values())  # finite, no NaN
    assert ("encoder_cache" in trainer.replay.data) == (mode != "full")
    stored = trainer.replay.data["image"].shape[-2]  # with a cache, images are kept at the decoder's size only
    assert stored == (32 if mode != "full" else 64)


def test_training_with_cache_matches_training_without(tmp_path, tiny_dinov2_dir):
    results = {}
    for cache in (True, False):
        cfg = compose_config([*TINY, *RUN, "encoder=dinov2", f"encoder.weights={tiny_dinov2_dir}",
                              "encoder.finetune=frozen", f"encoder.cache={cache}", f"run_dir={tmp_path / str(cache)}"])
        Trainer(cfg).run()
        results[cache] = losses(tmp_path / str(cache))
    for key in ("loss/rec", "loss/rew", "loss/dyn", "loss/rep"):
        assert results[True][key] == pytest.approx(results[False][key], rel=0.05), key
