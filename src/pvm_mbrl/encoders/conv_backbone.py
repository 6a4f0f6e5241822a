"""What the ImageNet CNN encoders share: features as a token map or a pooled vector, and fp32 depthwise training
on CPU."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from omegaconf import DictConfig
from torch import nn

from pvm_mbrl.encoders.pretrained import PretrainedEncoder

FEATURE_MODES = ("tokens", "pooled")


class FeatureMapHead(nn.Module):
    """``tokens``: the final map as ``[h*w, channels]``; ``pooled``: its spatial mean ``[channels]``."""

    def __init__(self, mode: str):
        super().__init__()
        if mode not in FEATURE_MODES:
            raise ValueError(f"unknown encoder.features {mode!r}; choose one of: {', '.join(FEATURE_MODES)}")
        self.mode = mode

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        tokens = feature_map.flatten(2).transpose(1, 2)
        return tokens if self.mode == "tokens" else tokens.mean(1)


def is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def _fp32_channels_last_on_cpu(forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    if x.device.type != "cpu":
        return forward(x)
    with torch.autocast("cpu", enabled=False):
        return forward(x.float().contiguous(memory_format=torch.channels_last))


def train_depthwise_in_fp32(module: nn.Module) -> None:
    """Run the trainable depthwise convolutions in ``module`` in fp32 and channels-last on CPU.

    oneDNN's bf16 backward of a depthwise convolution is several times slower than its fp32 channels-last one on
    CPU (measured here with AVX512-BF16: EfficientNet-Lite0 partial's update at 128² took 1.74 s in bf16 autocast,
    1.02 s so), and it dominated partial fine-tuning's update. Frozen depthwise convolutions (no backward) are left
    as they are, so a frozen encoder, and the cached prefix of a partial one, compute exactly as before; on CUDA
    nothing changes. Parameter names stay the same, so checkpoints load either way."""
    for conv in module.modules():
        if is_depthwise(conv) and conv.weight.requires_grad:
            conv.to(memory_format=torch.channels_last)
            conv.forward = functools.partial(_fp32_channels_last_on_cpu, conv.forward)


DEFAULT_INPUT_SIZE = 224  # the ImageNet training size
INPUT_STRIDE = 32  # the networks' total stride: the final map is input_size / 32 on a side


def check_input_size(input_size: int) -> None:
    if input_size < INPUT_STRIDE or input_size % INPUT_STRIDE:
        raise ValueError(f"encoder.input_size must be a multiple of {INPUT_STRIDE} and at least {INPUT_STRIDE}, got "
                         f"{input_size} (the network's final map is input_size / {INPUT_STRIDE} on a side; "
                         f"null = {DEFAULT_INPUT_SIZE})")


class ConvBackboneEncoder(PretrainedEncoder):
    """Subclasses build ``stem`` and ``blocks`` (the last one producing the final map) and call ``finish``.

    ``input_size`` is what frames are resized to before the network (224 by default, its ImageNet size); the
    convolutions take any multiple of 32, so a smaller input trades detail for CPU time: 128² costs ~1/3 of 224²
    and gives a 4x4 map instead of 7x7.
    """

    def __init__(self, image_size: int, input_size: int | None = None, **finetune):
        super().__init__(image_size, **finetune)
        self.input_size = input_size or DEFAULT_INPUT_SIZE
        check_input_size(self.input_size)

    @classmethod
    def from_config(cls, cfg: DictConfig, image_size: int, model_depth: int) -> ConvBackboneEncoder:
        return cls(image_size, features=cfg.get("features", "tokens"), input_size=cfg.get("input_size"),
                   **cls.finetune_kwargs(cfg))

    def finish(self, features: str) -> None:
        self.head = FeatureMapHead(features)
        # The loaded network is in train mode: a probe there would fold a blank image's batch statistics into
        # the ImageNet BatchNorm running statistics (1% at EfficientNet's momentum) before anything trains.
        nn.Module.train(self, False)
        with torch.no_grad():
            blank = torch.zeros(1, self.input_size, self.input_size, 3)
            final_map = self.run_blocks(self.stem(self.preprocessing(blank)), 0, len(self.blocks))
        channels, height, width = final_map.shape[1:]
        self._feature_shape = (height * width, channels) if features == "tokens" else (channels,)
        self.setup_finetuning()
        train_depthwise_in_fp32(self)
