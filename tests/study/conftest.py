"""A tiny study: dm_control cartpole, the tiny model, 8x action repeat, one short evaluation episode."""

import json
import time

from pvm_mbrl.rundir import JOB_FILE, STATUS_FILE
from tests.conftest import TINY

TINY_STUDY = ["env=dmc", "encoder=cnn", *TINY, "env.action_repeat=8", "prefill=400", "train_ratio=8",
              "checkpoint_every=400", "log_every=400", "eval_every=1000000", "eval_episodes=1",
              "evaluation.episodes=1", "evaluation.forgetting_images=0", "evaluation.samples=16",
              "evaluation.frames=2", "report.permutations=100", "report.bootstrap=200"]


def job(run_dir) -> dict:
    """The run's job record (``job.json``)."""
    return json.loads((run_dir / JOB_FILE).read_text())


def trainer_status(run_dir) -> dict:
    """The trainer's ``status.json``; empty while there is none (or it is being replaced)."""
    try:
        return json.loads((run_dir / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def wait_until(predicate, process, timeout=300):
    """Poll ``predicate`` while the study ``process`` runs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert process.poll() is None, "the study exited early"
        time.sleep(0.1)
    raise TimeoutError("condition never reached")
