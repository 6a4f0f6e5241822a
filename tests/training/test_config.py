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
    (["nosuchkey=1"], "bad config override"),
])
def test_bad_values_fail_naming_value_and_choices(overrides, message):
    with pytest.raises(ValueError, match=message):
        compose_config(overrides)


def test_cli_reports_bad_config_without_traceback(capsys):
    assert main(["train", "model=huge"]) == 2
    err = capsys.readouterr().err
    assert "unknown model preset 'huge'" in err and "Traceback" not in err
    assert "cpu" in group_options("model")
