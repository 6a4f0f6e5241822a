"""Bad input, as a careless user or a hostile tester types it: every case exits 2 with a message naming the bad value
or file (and never starts training: a case wrongly accepted prints the config and exits 0, which fails here)."""

from __future__ import annotations

import pytest

from pvm_mbrl.cli import main

TRAIN = ["train", "--print-config"]
BAD_SETTINGS = [  # (overrides, what the message must name)
    (["train_ratio=inf"], "train_ratio"),
    (["train_ratio=0"], "train_ratio must be a finite number > 0"),
    (["train_ratio=-1"], "-1"),
    (["batch_length=1"], "batch_length must be >= 2"),
    (["batch_size=0"], "batch_size must be a positive integer, got 0"),
    (["steps=-5"], "steps must be a positive integer, got -5"),
    (["steps=800", "prefill=5000"], "prefill (5000) must be below steps (800)"),
    (["optim.lr=-1"], "optim.lr must be a number in (0, 1), got -1"),
    (["optim.lr=1000"], "optim.lr must be a number in (0, 1), got 1000"),
    (["optim.eps=2"], "optim.eps must be a number in [0, 1), got 2"),
    (["optim.agc=-0.1"], "optim.agc must be a number >= 0 and finite, got -0.1"),
    (["optim.agc=inf"], "optim.agc"),
    (["optim.warmup=-1"], "optim.warmup must be an integer >= 0, got -1"),
    (["replay_context=2"], "replay_context must be 0 or 1, got 2"),
    (["model.classes=300"], "model.classes must be <= 256"),
    (["replay_storage=tape"], "'tape'"),
    (["precision=fp8"], "'fp8'"),
    (["compile=fast"], "'fast'"),
    (["device=tpu"], "'tpu'"),
    (["model.deter=100", "model.blocks=8"], "model.deter (100) must be divisible by model.blocks (8)"),
    (["env.size=0"], "env.size must be a positive integer, got 0"),
    (["env.num_envs=0"], "env.num_envs must be >= 1, got 0"),
    (["env.action_repeat=0"], "env.action_repeat must be >= 1, got 0"),
    (["env.name=dmc:nope"], "'nope'"),
    (["env.name=atari:pong"], "'atari:pong'"),
    (["encoder=efficientnet_lite0", "encoder.finetune=half"], "'half'"),
    (["loss_scales.banana=1"], "unknown setting 'loss_scales.banana'"),
    (["trian_ratio=3"], "unknown setting 'trian_ratio'; did you mean train_ratio?"),
    (["+trian_ratio=3"], "'+trian_ratio=3': settings cannot be added"),
    (["++banana=1"], "'++banana=1'"),
    (["model=huge"], "unknown model preset 'huge'"),
    (["threads=-1"], "threads must be a number >= 0, got -1"),
    (["eval_episodes=0"], "eval_episodes must be a positive integer, got 0"),
    (["time_limit_minutes=-5"], "time_limit_minutes must be a number >= 0, got -5"),
    (["checkpoint_every=0"], "checkpoint_every must be a positive integer, got 0"),
    (["log_every=abc"], "'abc'"),
]


@pytest.mark.parametrize(("overrides", "named"), BAD_SETTINGS, ids=[" ".join(o) for o, _ in BAD_SETTINGS])
def test_bad_setting_is_refused_naming_it(overrides, named, capsys):
    assert main([*TRAIN, *overrides]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


def test_bad_commands_and_files_are_refused_naming_them(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    cases = [
        (["evaluate", str(missing)], str(missing)),
        (["report", str(missing)], str(missing)),
        (["study", "no-such-preset", "--dry-run"], "no-such-preset"),
        (["study", "quick", "evaluation.episodes=0", "--dry-run", "--dir", str(tmp_path / "s")], "got 0"),
        (["study", "quick", "evaluation.bogus=1", "--dry-run", "--dir", str(tmp_path / "s")], "bogus"),
        (["study", "quick", "+banana=1,2", "--dry-run", "--dir", str(tmp_path / "s")], "banana"),
        (["study", "status", str(missing)], str(missing)),
    ]
    for argv, named in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert named in err and "Traceback" not in err, (argv, err)
