import pytest
import torch

from pvm_mbrl.encoders.cnn import CNNDecoder, CNNEncoder, cnn_stages


@pytest.mark.parametrize("size, stages, res", [(64, 4, 4), (128, 5, 4), (224, 5, 7)])
@pytest.mark.parametrize("downsample", ["pool", "stride"])
def test_encoder_and_decoder_shapes(size, stages, res, downsample):
    assert cnn_stages(size) == stages
    encoder = CNNEncoder(size, depth=2, downsample=downsample)
    images = torch.randint(0, 256, (2, size, size, 3), dtype=torch.uint8)
    features = encoder(images)
    channels = 2 * (4 if stages >= 3 else 3)
    assert features.shape == (2, channels, res, res) == (2, *encoder.feature_shape)
    decoder = CNNDecoder(16, 4, 8, size, depth=2, downsample=downsample)
    out = decoder(torch.randn(2, 3, 20))
    assert out.shape == (2, 3, size, size, 3) and out.min() >= 0 and out.max() <= 1


def test_128_adds_one_stage_over_64():
    small, large = CNNEncoder(64, depth=2), CNNEncoder(128, depth=2)
    assert len(large.layers) == len(small.layers) + 1


@pytest.mark.parametrize("size", [100, 30, 8])
def test_unsupported_sizes_name_the_value(size):
    with pytest.raises(ValueError, match=f"image size {size} is not supported"):
        CNNEncoder(size)


def test_rejects_float_images_and_unknown_downsample():
    encoder = CNNEncoder(64, depth=2)
    with pytest.raises(ValueError, match="expects uint8 images"):
        encoder(torch.zeros(1, 64, 64, 3))
    with pytest.raises(ValueError, match="downsample mode 'avg'"):
        CNNEncoder(64, downsample="avg")


def test_parameter_groups_cover_all_parameters():
    encoder = CNNEncoder(64, depth=2)
    groups = encoder.parameter_groups(1e-4)
    assert groups[0]["lr"] == 1e-4
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in encoder.parameters())


@pytest.mark.parametrize("downsample", ["pool", "stride"])
def test_stages_normalise_after_downsampling(downsample):
    """DreamerV3's pool mode: conv -> max-pool -> norm -> SiLU, so the norm runs at the pooled resolution."""
    stage = CNNEncoder(64, depth=2, downsample=downsample).layers[0]
    kinds = [type(m).__name__ for m in stage]
    expected = ["Conv2d", "MaxPool2d"] if downsample == "pool" else ["Conv2d"]
    assert kinds == [*expected, "ChannelNormSiLU"]
    assert all(m.bias is not None for m in stage.modules() if isinstance(m, torch.nn.Conv2d))


def test_decoder_projects_deter_by_blocks_and_stoch_by_mlp_then_norm():
    torch.manual_seed(0)
    deter, stoch, channels = 64, 12, 16  # 8 blocks of 2 channels
    decoder = CNNDecoder(deter, stoch, 8, 32, depth=4)
    project = decoder.project
    assert project.from_deter.blocks == 8 and project.shape == (channels, 4, 4)
    x = torch.zeros(1, deter)
    x[0, :8] = torch.randn(8)  # the first block's slice of the deterministic state
    moved = project.from_deter(x).reshape(1, 8, 4, 4, channels // 8).abs().sum((2, 3, 4))
    assert moved[0, 0] > 0 and torch.all(moved[0, 1:] == 0)  # block 0 feeds channel group 0 only
    mapped = project(torch.randn(5, deter + stoch))
    assert mapped.shape == (5, channels, 4, 4) and mapped.min() >= -0.2785  # SiLU's minimum: norm + SiLU applied


def test_decoder_projection_size_at_size200m():
    """Official bspace: ~17M parameters at size200m, against ~42M for one dense projection of the state."""
    decoder = CNNDecoder(8192, 32 * 64, 1024, 64, depth=64)
    params = sum(p.numel() for p in decoder.project.parameters())
    assert 16e6 < params < 18e6
