"""A tiny study: dm_control cartpole, the tiny model, 8x action repeat, one short evaluation episode."""

from tests.conftest import TINY

TINY_STUDY = ["env=dmc", "encoder=cnn", *TINY, "env.action_repeat=8", "prefill=400", "train_ratio=8",
              "checkpoint_every=400", "log_every=400", "eval_every=1000000", "eval_episodes=1",
              "evaluation.episodes=1", "evaluation.forgetting_images=0", "evaluation.samples=16",
              "evaluation.frames=2", "report.permutations=100", "report.bootstrap=200"]
