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
    decoder = CNNDecoder(20, size, depth=2, downsample=downsample)
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
