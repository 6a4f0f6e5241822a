"""DINOv2 (ViT-S/14 by default) through ``transformers``; features are the 256 patch tokens x 384."""

from __future__ import annotations

import torch
from torch import nn

from pvm_mbrl.encoders.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from pvm_mbrl.encoders.vit import ViTEncoder
from pvm_mbrl.encoders.weights import load_hf_model


class PatchTokens(nn.Module):
    """Final LayerNorm, then every token but [CLS] and registers (``last_hidden_state[:, 1:]``)."""

    def __init__(self, norm: nn.Module, prefix_tokens: int):
        super().__init__()
        self.norm, self.prefix_tokens = norm, prefix_tokens

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(hidden)[:, self.prefix_tokens:]


class DinoV2Encoder(ViTEncoder):
    """As the paper's code wires it: resize 256 (cubic), centre-crop 224, ImageNet mean/std, patch tokens."""

    default_weights = "facebook/dinov2-small"

    def __init__(self, image_size: int = 224, weights: str = default_weights, allow_download: bool = False,
                 **finetune):
        super().__init__(image_size, **finetune)
        from transformers import Dinov2Model

        model = load_hf_model(Dinov2Model, weights, allow_download)
        config = model.config
        crop = config.image_size if config.image_size <= 224 else 224
        self.preprocessing = Preprocessing(round(crop * 256 / 224), crop, IMAGENET_MEAN, IMAGENET_STD)
        self.stem = model.embeddings
        self.blocks = model.encoder.layer
        self.prefix_tokens = 1 + getattr(config, "num_register_tokens", 0)
        self.head = PatchTokens(model.layernorm, self.prefix_tokens)
        self.heads = config.num_attention_heads
        self._feature_shape = ((crop // config.patch_size) ** 2, config.hidden_size)
        self.setup_finetuning()

    def last_block_query_key(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        last = self.blocks[-1]
        x = last.norm1(hidden)
        return last.attention.attention.query(x), last.attention.attention.key(x)
