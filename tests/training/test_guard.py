"""The divergence guard: skipped updates counted, logged and shown; the run stopped after too many in a row,
status failed, last good checkpoint kept."""

import json
import re

import numpy as np
import pytest
import torch

from pvm_mbrl.checkpoint import load_checkpoint, nonfinite_tensors
from pvm_mbrl.errors import DivergenceError
from pvm_mbrl.training.config import compose_config
from pvm_mbrl.training.guard import DivergenceGuard
from pvm_mbrl.training.loop import Trainer, resume_conflicts

SKIPPED = {"train/nonfinite": 1.0, "nonfinite/value": 1.0, "loss/value": float("nan")}
APPLIED = {"train/nonfinite": 0.0, "loss/value": 1.5}


def test_guard_counts_streaks_and_stops_at_patience_naming_the_terms(tmp_path):
    guard = DivergenceGuard(patience=3)
    assert guard.progress() == {}
    assert guard.observe(SKIPPED) == {"train/nonfinite": 1.0, "nonfinite/value": 1.0}  # no NaN into the means
    assert not guard.healthy
    assert guard.observe(APPLIED) == APPLIED and guard.healthy  # an applied update ends the streak
    guard.checkpointed(tmp_path / "checkpoint.pt", 1234)
    guard.observe(SKIPPED)
    guard.observe({"train/nonfinite": 1.0, "nonfinite/rew": 1.0, "nonfinite/value": 1.0})
    with pytest.raises(DivergenceError, match=r"3 consecutive updates had non-finite \(inf or NaN\) values, in the "
                                              r"loss terms: value \(3 of them\), rew \(1 of them\).*last good "
                                              rf"checkpoint is kept \({tmp_path}/checkpoint.pt, at env step 1,234\)"
                                              r".*divergence_patience \(now 3\)"):
        guard.observe(SKIPPED)
    assert guard.skipped == 4 and guard.metrics()["train/skipped_updates"] == 4.0
    assert guard.progress() == {"skipped": 4.0}


def test_guard_zeroes_non_finite_actions_and_counts_them():
    guard = DivergenceGuard(patience=10)
    actions = np.array([[0.5, -0.5], [np.nan, 0.25], [np.inf, -np.inf]], np.float32)
    finite = guard.finite_actions(actions)
    assert finite.dtype == np.float32 and finite.tolist() == [[0.5, -0.5], [0.0, 0.25], [0.0, 0.0]]
    assert guard.nonfinite_actions == 2
    sound = np.zeros((2, 2), np.float32)
    assert guard.finite_actions(sound) is sound


def test_divergence_patience_may_change_on_resume():
    assert resume_conflicts({"divergence_patience": 10, "seed": 0}, {"divergence_patience": 3, "seed": 0}) == []
    assert resume_conflicts({"seed": 0}, {"divergence_patience": 10, "seed": 0}) == []  # runs from before it


# One update per agent step (4 env steps) from env step 64; a streak of 15 skipped updates spans 56 env steps,
# so a checkpoint time (every 40) and a log line (every 40) fall inside it.
SHORT = ["steps=2000", "prefill=40", "train_ratio=16", "log_every=40", "eval_every=100000", "eval_episodes=1",
         "checkpoint_every=40", "env.action_repeat=4", "divergence_patience=15"]


def test_a_diverging_run_stops_marked_failed_with_the_last_good_checkpoint(tiny_overrides, capsys):
    trainer = Trainer(compose_config([*tiny_overrides, *SHORT]))
    update, seen = trainer.update, {"calls": 0}

    def diverging_update():  # sound for 6 updates, then the value term overflows as with loss_scales.value=1e39
        seen["calls"] += 1
        if seen["calls"] == 7:
            trainer.agent.scales["value"] = 1e39
            seen["env_steps"] = trainer.env_steps
            seen["weights"] = {k: v.clone() for k, v in trainer.agent.state_dict().items()}
        return update()

    trainer.update = diverging_update
    with pytest.raises(DivergenceError, match=r"15 consecutive updates .* loss terms: value \(15 of them\)"):
        trainer.run()
    assert trainer.env_steps - seen["env_steps"] > 40  # a checkpoint time passed during the streak
    status = json.loads((trainer.run_dir / "status.json").read_text())
    assert status["state"] == "failed" and "loss terms: value" in status["reason"]
    state = load_checkpoint(trainer.run_dir / "checkpoint.pt")
    assert nonfinite_tensors(state) == []
    assert state["counters"]["env_steps"] < seen["env_steps"]  # none written while updates were being skipped
    for name, value in trainer.agent.state_dict().items():  # skipped updates moved nothing
        assert torch.equal(value, seen["weights"][name]), name
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(v) for row in rows for v in row.values())  # skipped updates' NaN losses kept out
    assert any(row.get("train/skipped_updates", 0) > 0 and row["train/nonfinite"] > 0 for row in rows)
    assert re.search(r"\| skipped \d+", capsys.readouterr().err)  # and shown in the progress line
