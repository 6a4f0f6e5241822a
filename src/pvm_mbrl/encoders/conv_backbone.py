"""What the ImageNet CNN encoders share: features as a token map or a pooled vector."""

from __future__ import annotations

from typing import ClassVar

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


class ConvBackboneEncoder(PretrainedEncoder):
    """Subclasses build ``stem`` and ``blocks`` (the last one producing the final map) and call ``finish``."""

    input_size: ClassVar[int] = 224

    @classmethod
    def from_config(cls, cfg: DictConfig, image_size: int, model_depth: int) -> ConvBackboneEncoder:
        return cls(image_size, features=cfg.get("features", "tokens"), **cls.finetune_kwargs(cfg))

    def finish(self, features: str) -> None:
        self.head = FeatureMapHead(features)
        with torch.no_grad():
            blank = torch.zeros(1, self.input_size, self.input_size, 3)
            final_map = self.run_blocks(self.stem(self.preprocessing(blank)), 0, len(self.blocks))
        channels, height, width = final_map.shape[1:]
        self._feature_shape = (height * width, channels) if features == "tokens" else (channels,)
        self.setup_finetuning()
