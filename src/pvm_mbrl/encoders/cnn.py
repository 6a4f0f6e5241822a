"""DreamerV3's convolutional encoder and image decoder (the from-scratch baseline).

``downsample="pool"`` (official 2024-25 configs): per stage a 5x5 stride-1 convolution (RMSNorm + SiLU)
then a 2x2 max-pool; the decoder mirrors it with nearest-neighbour up-sampling + 5x5 convolutions.
``downsample="stride"`` (DreamerV3's 2023 paper): 4x4 stride-2 convolutions and transposed convolutions,
~6x cheaper on a CPU because no full-resolution activation is kept; the ``cpu`` preset uses it.
Channels are depth x (2, 3, 4, 4), repeating the last multiplier for extra stages. Stages are added until
the map is 4-7 pixels wide: 64^2 uses four stages (4x4), 128^2 five (4x4, the paper's extra stage), 224^2
five (7x7). The decoder's output size is set independently of the encoder.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from pvm_mbrl.dreamer.nets import NORM_EPS, ChannelRMSNorm, conv_norm_act, init_fan_in_, linear
from pvm_mbrl.encoders.base import ImageEncoder

CHANNEL_MULTS = (2, 3, 4, 4)
MIN_RES, MAX_RES = 4, 7
DOWNSAMPLE_MODES = ("pool", "stride")


def cnn_stages(image_size: int) -> int:
    """Number of conv + pool stages that bring ``image_size`` down to 4-7 pixels; raises if impossible."""
    size, stages = image_size, 0
    while size > MAX_RES and size % 2 == 0:
        size //= 2
        stages += 1
    if not (MIN_RES <= size <= MAX_RES) or stages < 3:
        raise ValueError(
            f"image size {image_size} is not supported by the CNN: it must halve (at least 3 times) to 4-7 "
            f"pixels, e.g. 64, 96, 128 or 224"
        )
    return stages


def cnn_channels(depth: int, stages: int) -> list[int]:
    mults = list(CHANNEL_MULTS) + [CHANNEL_MULTS[-1]] * max(0, stages - len(CHANNEL_MULTS))
    return [depth * m for m in mults[:stages]]


def check_downsample(mode: str) -> None:
    if mode not in DOWNSAMPLE_MODES:
        raise ValueError(f"unknown CNN downsample mode {mode!r}; choose one of: {', '.join(DOWNSAMPLE_MODES)}")


def down_stage(in_channels: int, out_channels: int, mode: str) -> nn.Module:
    """One encoder stage that halves the resolution."""
    if mode == "pool":
        return nn.Sequential(conv_norm_act(in_channels, out_channels), nn.MaxPool2d(2))
    conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
    init_fan_in_(conv.weight, in_channels * 16)
    return nn.Sequential(conv, ChannelRMSNorm(out_channels, eps=NORM_EPS), nn.SiLU())


def up_stage(in_channels: int, out_channels: int, mode: str, last: bool = False) -> nn.Module:
    """One decoder stage that doubles the resolution; the last one outputs raw RGB without norm."""
    if mode == "pool":
        conv = nn.Conv2d(in_channels, out_channels, 5, padding=2, bias=last)
        fan_in = in_channels * 25
    else:
        conv = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=last)
        fan_in = in_channels * 4  # each output pixel sees 2x2 kernel taps per input channel
    init_fan_in_(conv.weight, fan_in)
    if last:
        nn.init.zeros_(conv.bias)
    layers = [nn.Upsample(scale_factor=2, mode="nearest"), conv] if mode == "pool" else [conv]
    if not last:
        layers += [ChannelRMSNorm(out_channels, eps=NORM_EPS), nn.SiLU()]
    return nn.Sequential(*layers)


def preprocess_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 255] NHWC -> float NCHW in [-0.5, 0.5], as DreamerV3 feeds its CNN."""
    return pixels.permute(0, 3, 1, 2).float() / 255.0 - 0.5


class CNNEncoder(ImageEncoder):
    """DreamerV3's CNN trained from scratch; features are the flattened final map."""

    def __init__(self, image_size: int = 64, depth: int = 32, downsample: str = "pool"):
        super().__init__(image_size)
        check_downsample(downsample)
        self.stages = cnn_stages(image_size)
        channels = cnn_channels(depth, self.stages)
        self.layers = nn.Sequential(*(
            down_stage(c_in, c_out, downsample) for c_in, c_out in zip([3] + channels[:-1], channels, strict=True)
        ))
        self._out_shape = (channels[-1], image_size >> self.stages, image_size >> self.stages)

    @classmethod
    def from_config(cls, cfg: DictConfig, image_size: int, model_depth: int) -> CNNEncoder:
        return cls(image_size, depth=cfg.get("depth") or model_depth, downsample=cfg.get("downsample", "pool"))

    @classmethod
    def check_image_size(cls, image_size: int) -> None:
        cnn_stages(image_size)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self._out_shape

    def encode_float(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.layers(preprocess_pixels(pixels.reshape(-1, *pixels.shape[-3:])))
        return x.reshape(*pixels.shape[:-3], *self._out_shape)


class CNNDecoder(nn.Module):
    """Reconstructs ``[N, out_size, out_size, 3]`` images in [0, 1] from latent features."""

    def __init__(self, in_features: int, out_size: int = 64, depth: int = 32, downsample: str = "pool"):
        super().__init__()
        check_downsample(downsample)
        self.out_size = out_size
        stages = cnn_stages(out_size)
        channels = cnn_channels(depth, stages)
        self.min_res = out_size >> stages
        self.project = linear(in_features, channels[-1] * self.min_res**2)
        self.start_channels = channels[-1]
        outs = channels[::-1][1:] + [3]
        self.layers = nn.Sequential(*(
            up_stage(c_in, c_out, downsample, last=i == stages - 1)
            for i, (c_in, c_out) in enumerate(zip(channels[::-1], outs, strict=True))
        ))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        lead = features.shape[:-1]
        x = self.project(features.reshape(-1, features.shape[-1]))
        x = x.reshape(-1, self.start_channels, self.min_res, self.min_res)
        x = self.layers(x)
        return torch.sigmoid(x.float()).permute(0, 2, 3, 1).reshape(*lead, self.out_size, self.out_size, 3)
