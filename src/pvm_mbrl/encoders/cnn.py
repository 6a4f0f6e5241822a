"""DreamerV3's convolutional encoder and image decoder (the from-scratch baseline).

``downsample="pool"`` (official 2024-25 configs): per stage a 5x5 stride-1 convolution, a 2x2 max-pool, then
RMSNorm + SiLU at the pooled resolution; the decoder mirrors it with nearest-neighbour up-sampling + 5x5
convolutions. ``downsample="stride"`` (DreamerV3's 2023 paper): 4x4 stride-2 convolutions and transposed
convolutions, ~6x cheaper on a CPU because no full-resolution activation is kept; the ``cpu`` preset uses it.
The encoder's flattened map enters the posterior directly (no extra norm), as DreamerV3's tokens do. The
decoder first projects the model state as DreamerV3's ``bspace`` decoder does: a block-diagonal linear map
of the deterministic state plus an MLP of the stochastic one, summed, then RMSNorm + SiLU.
Channels are depth x (2, 3, 4, 4), repeating the last multiplier for extra stages. Stages are added until
the map is 4-7 pixels wide: 64^2 uses four stages (4x4), 128^2 five (4x4, the paper's extra stage), 224^2
five (7x7). The decoder's output size is set independently of the encoder.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

from pvm_mbrl.encoders.base import ImageEncoder
from pvm_mbrl.nets import NORM_EPS, BlockLinear, ChannelNormSiLU, NormAct, conv2d, linear

CHANNEL_MULTS = (2, 3, 4, 4)
DECODER_SPACE_BLOCKS = 8  # DreamerV3's ``dec.simple.bspace``
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
    """One encoder stage that halves the resolution; norm and activation run at the halved resolution."""
    if mode == "pool":
        downsample = [conv2d(in_channels, out_channels, 5), nn.MaxPool2d(2)]
    else:
        downsample = [conv2d(in_channels, out_channels, 4, stride=2)]
    return nn.Sequential(*downsample, ChannelNormSiLU(out_channels, eps=NORM_EPS))


def up_stage(in_channels: int, out_channels: int, mode: str, last: bool = False) -> nn.Module:
    """One decoder stage that doubles the resolution; the last one outputs raw RGB without norm."""
    if mode == "pool":
        layers = [nn.Upsample(scale_factor=2, mode="nearest"), conv2d(in_channels, out_channels, 5)]
    else:
        layers = [conv2d(in_channels, out_channels, 4, stride=2, transposed=True)]
    if not last:
        layers.append(ChannelNormSiLU(out_channels, eps=NORM_EPS))
    return nn.Sequential(*layers)


def preprocess_pixels(pixels: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 255] NHWC -> float NCHW in [-0.5, 0.5], as DreamerV3 feeds its CNN."""
    return pixels.permute(0, 3, 1, 2).float() / 255.0 - 0.5


class CNNEncoder(ImageEncoder):
    """DreamerV3's CNN trained from scratch; features are the flattened final map."""

    features_need_norm = False  # its last stage ends in RMSNorm + SiLU already

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


class StateToMap(nn.Module):
    """DreamerV3's decoder input (``bspace``): the model state ``[deter, stoch]`` to the first feature map.

    A block-diagonal linear map of the deterministic state (block g fills channel group g) plus a two-layer
    MLP of the stochastic state, summed, then RMSNorm + SiLU over channels.
    """

    def __init__(self, deter: int, stoch: int, units: int, channels: int, resolution: int,
                 blocks: int = DECODER_SPACE_BLOCKS):
        super().__init__()
        if channels % blocks:
            raise ValueError(f"decoder channels {channels} must divide into {blocks} blocks")
        self.deter, self.blocks, self.shape = deter, blocks, (channels, resolution, resolution)
        size = channels * resolution**2
        self.from_deter = BlockLinear(deter, size, blocks)
        self.from_stoch = nn.Sequential(NormAct(stoch, 2 * units), linear(2 * units, size))
        self.norm_act = nn.Sequential(ChannelNormSiLU(channels, eps=NORM_EPS))  # a Sequential: checkpoint keys

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        deter, stoch = features[:, : self.deter], features[:, self.deter:]
        channels, height, width = self.shape
        x0 = self.from_deter(deter).reshape(-1, self.blocks, height, width, channels // self.blocks)
        x0 = x0.permute(0, 1, 4, 2, 3).reshape(-1, channels, height, width)
        x1 = self.from_stoch(stoch).reshape(-1, channels, height, width)
        return self.norm_act(x0 + x1)


class CNNDecoder(nn.Module):
    """Reconstructs ``[N, out_size, out_size, 3]`` images in [0, 1] from model states ``[deter, stoch]``."""

    def __init__(self, deter: int, stoch: int, units: int, out_size: int = 64, depth: int = 32,
                 downsample: str = "pool"):
        super().__init__()
        check_downsample(downsample)
        self.out_size = out_size
        stages = cnn_stages(out_size)
        channels = cnn_channels(depth, stages)
        self.min_res = out_size >> stages
        self.project = StateToMap(deter, stoch, units, channels[-1], self.min_res)
        outs = channels[::-1][1:] + [3]
        self.layers = nn.Sequential(*(
            up_stage(c_in, c_out, downsample, last=i == stages - 1)
            for i, (c_in, c_out) in enumerate(zip(channels[::-1], outs, strict=True))
        ))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        lead = features.shape[:-1]
        x = self.layers(self.project(features.reshape(-1, features.shape[-1])))
        return torch.sigmoid(x.float()).permute(0, 2, 3, 1).reshape(*lead, self.out_size, self.out_size, 3)
