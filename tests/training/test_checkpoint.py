import json

import numpy as np
import pytest
import torch

from pvm_mbrl.checkpoint import load_checkpoint, save_checkpoint
from pvm_mbrl.rundir import RunDir
from pvm_mbrl.training.config import compose_config
from pvm_mbrl.training.loop import Trainer

SHORT = ["steps=160", "prefill=60", "train_ratio=16", "log_every=40", "eval_every=1000", "eval_episodes=1",
         "checkpoint_every=80", "env.action_repeat=4"]


def assert_same_state(a: dict, b: dict, path: str = "") -> None:
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_state(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


def test_atomic_save_leaves_no_temporary_file(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"x": torch.arange(3)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["x"], torch.arange(3))


def test_checkpoint_round_trip_restores_step_weights_optimiser_and_replay(tiny_overrides):
    first = Trainer(compose_config([*tiny_overrides, *SHORT]))
    first.run()
    assert first.updates > 0 and first.env_steps == 160
    resumed = Trainer(compose_config([*tiny_overrides, *SHORT, "steps=240"]))
    assert resumed.resuming and resumed.env_steps == 160 and resumed.updates == first.updates
    assert_same_state(first.agent.state_dict(), resumed.agent.state_dict())
    assert_same_state(first.agent.optimizer.state_dict(), resumed.agent.optimizer.state_dict())
    # Replay holds at most the run's agent steps (env steps / action repeat 4): raising steps raises it.
    assert (first.replay.stream_capacity, resumed.replay.stream_capacity) == (160 // 4, 240 // 4)
    for key, value in first.replay.data.items():
        if not key.startswith("latent_"):  # latents refreshed by training after their chunk was saved may differ
            assert np.array_equal(value, resumed.replay.data[key][:, :160 // 4]), key
    assert first.replay.totals.tolist() == resumed.replay.totals.tolist()
    # Replay context after resume: every stored step carries the posterior latent the policy formed (an
    # episode's first deter is the core step from zeros, which is exactly zero at initialisation).
    stored = resumed.replay.data["latent_deter"][0, :160 // 4]
    later = ~resumed.replay.data["is_first"][0, :160 // 4]
    assert np.all(np.abs(stored[later]).sum(-1) > 0)
    resumed.run()
    status = json.loads((resumed.run_dir / "status.json").read_text())
    assert status == {**status, "state": "finished", "env_steps": 240}
    steps = [s for s, _ in RunDir(resumed.run_dir).metric("speed/env_steps_per_s")]
    assert steps == sorted(steps) and steps[-1] == 240  # the metrics file continues across the resume


def test_resume_with_a_different_model_is_refused(tiny_overrides):
    Trainer(compose_config([*tiny_overrides, *SHORT, "steps=8", "prefill=4"])).run()
    with pytest.raises(ValueError, match="different config.*model.units: 32 -> 64"):
        Trainer(compose_config([*tiny_overrides, *SHORT, "model.units=64"]))


def test_run_writes_every_loss_term_and_speeds(tiny_overrides):
    # action repeat 8: cartpole episodes last 125 agent steps, so one finishes within 1040 env steps
    trainer = Trainer(compose_config([*tiny_overrides, *SHORT, "env.action_repeat=8", "steps=1040",
                                      "train_ratio=4", "log_every=520"]))
    trainer.run()
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    for key in ("loss/rec", "loss/rew", "loss/con", "loss/dyn", "loss/rep", "loss/policy", "loss/value",
                "loss/repval", "episode/return", "eval/return", "speed/env_steps_per_s", "speed/updates_per_s",
                "replay/bytes_per_step"):
        assert key in keys, key
    assert any((trainer.run_dir / "tensorboard").iterdir())
    assert (trainer.run_dir / "config.yaml").exists()


def test_updates_write_their_posteriors_back_to_replay(tiny_overrides):
    trainer = Trainer(compose_config([*tiny_overrides, *SHORT, "steps=80"]))
    trainer.run()
    before = {k: v.copy() for k, v in trainer.replay.data.items()}
    trainer.replay.online_queue.clear()  # uniform draws only, so the same seed gives the update the same rows
    trainer.replay.rng = np.random.default_rng(123)
    stream, rows = trainer.replay.sample_positions(trainer.cfg.batch_size, trainer.sequence_length)
    trainer.replay.rng = np.random.default_rng(123)
    trainer.update()
    changed = np.flatnonzero((trainer.replay.data["latent_deter"][0] != before["latent_deter"][0]).any(-1))
    written = set(rows[:, 1:].ravel().tolist())
    assert changed.size > 0 and set(changed.tolist()) <= written
    assert np.array_equal(trainer.replay.data["image"], before["image"])


def test_an_evaluation_cut_short_by_an_interrupt_runs_again_on_resume(tiny_overrides, monkeypatch):
    from pvm_mbrl.training import loop

    settings = [*tiny_overrides, *SHORT, "eval_every=80", "env.action_repeat=8"]
    real_run_episodes = loop.run_episodes

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt("SIGTERM during the evaluation")

    monkeypatch.setattr(loop, "run_episodes", interrupted)
    first = Trainer(compose_config(settings))
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert first.env_steps == 80 and load_checkpoint(first.files.checkpoint)["counters"]["evaluated_at"] == 0
    monkeypatch.setattr(loop, "run_episodes", real_run_episodes)
    Trainer(compose_config(settings)).run()
    steps = [step for step, _ in RunDir(first.run_dir).metric("eval/return")]
    assert steps == [88, 160]  # the evaluation owed at 80 runs first thing after the resume, then on schedule


def test_a_second_signal_while_checkpointing_does_not_cut_it_short(capsys):
    import os
    import signal

    from pvm_mbrl.training.loop import signals_deferred

    before = signal.getsignal(signal.SIGINT)
    with signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)  # would raise KeyboardInterrupt here without the deferral
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is before
    assert capsys.readouterr().out.count("still writing the checkpoint") == 2


def test_a_second_signal_right_after_the_interrupt_only_prints(capsys):
    """Two signals can come at once (the terminal's Ctrl-C and a study launcher passing its own on); the second must
    not interrupt the handling of the first before the checkpoint's deferral begins."""
    import os
    import signal

    from pvm_mbrl.errors import Interrupted, handle_stop_signals, restore_signal_handlers
    from pvm_mbrl.training import loop

    previous = handle_stop_signals(loop._interrupt_training)  # as training installs it
    try:
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # would raise again here without the handler's switch
    finally:
        restore_signal_handlers(previous)
    assert "still writing the checkpoint" in capsys.readouterr().out
