import pytest

from pvm_mbrl.cli import main
from pvm_mbrl.training.config import compose_config, group_options


def test_default_config_is_the_cpu_preset_on_cartpole():
    cfg = compose_config([])
    assert cfg.env.name == "dmc:cartpole-balance" and cfg.model.deter == 512 and cfg.batch_length == 16
    assert cfg.run_dir == "runs/dmc-cartpole-balance/cnn/seed0"


def test_official_presets_match_dreamerv3():
    expected = {  # deter, hidden, classes, depth, units
        "size1m": (512, 64, 4, 4, 64), "size12m": (2048, 256, 16, 16, 256), "size25m": (3072, 384, 24, 24, 384),
        "size50m": (4096, 512, 32, 32, 512), "size100m": (6144, 768, 48, 48, 768),
        "size200m": (8192, 1024, 64, 64, 1024), "size400m": (12288, 1536, 96, 96, 1536),
    }
    for name, values in expected.items():
        cfg = compose_config([f"model={name}"])
        m = cfg.model
        assert (m.deter, m.hidden, m.classes, m.depth, m.units) == values, name
        assert m.stoch == 32 and m.blocks == 8 and m.cnn_downsample == "pool"
        assert cfg.batch_length == 64 and cfg.optim.lr == 4e-5 and cfg.optim.warmup == 1000


@pytest.mark.parametrize("overrides, message", [
    (["model=huge"], "unknown model preset 'huge'; choose one of: cpu, size100m"),
    (["env.name=dmc:cartpole-dance"], "unknown dmc task 'cartpole-dance'.*cartpole-balance"),
    (["env.name=atari:pong"], "unknown env 'atari:pong'.*family one of dmc"),
    (["train_ratio=-1"], "train_ratio must be a number >= 0, got -1"),
    (["env.size=100"], "image size 100 is not supported"),
    (["encoder.name=resnet"], "unknown encoder 'resnet'; known encoders: clip, cnn, dinov2"),
    (["precision=fp16"], "precision must be 'auto', 'bf16' or 'fp32', got 'fp16'"),
    (["batch_size=0"], "batch_size must be a positive integer, got 0"),
    (["model.deter=100"], "model.deter \\(100\\) must be divisible by model.blocks \\(8\\)"),
    (["nosuchkey=1"], "unknown setting 'nosuchkey'"),
    (["train_ratio=inf"], "train_ratio must be a finite number > 0.*got inf"),
    (["train_ratio=0"], "train_ratio must be a finite number > 0.*got 0"),
    (["batch_length=1"], "batch_length must be >= 2.*got 1"),
    (["prefill=5000", "steps=800"], r"prefill \(5000\) must be below steps \(800\)"),
    (["optim.lr=-1"], r"optim.lr must be a number in \(0, 1\), got -1"),
    (["optim.lr=1000"], r"optim.lr must be a number in \(0, 1\), got 1000"),
    (["optim.agc=-0.3"], "optim.agc must be a number >= 0 and finite, got -0.3"),
    (["optim.eps=nan"], r"optim.eps must be a number in \[0, 1\), got nan"),
    (["optim.warmup=-5"], "optim.warmup must be an integer >= 0, got -5"),
    (["divergence_patience=0"], "divergence_patience must be a positive integer, got 0"),
])
def test_bad_values_fail_naming_value_and_choices(overrides, message):
    with pytest.raises(ValueError, match=message):
        compose_config(overrides)


def test_cli_reports_bad_config_without_traceback(capsys):
    assert main(["train", "model=huge"]) == 2
    err = capsys.readouterr().err
    assert "unknown model preset 'huge'" in err and "Traceback" not in err
    assert "cpu" in group_options("model")


def test_metrics_after_a_torn_line_start_on_a_fresh_line(tmp_path):
    from pvm_mbrl.rundir import RunDir
    from pvm_mbrl.training.logger import MetricsLogger

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss/rec": 2.0}\n{"step": 2, "loss/r')  # a killed write
    logger = MetricsLogger(RunDir(tmp_path), tensorboard=False)
    logger.write(3, {"loss/rec": 4.0})
    logger.close()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert lines[-1].startswith('{"step": 3') and len(lines) == 3
    assert RunDir(tmp_path).metric("loss/rec") == [(1, 2.0), (3, 4.0)]
