"""CLIP's vision tower (ViT-B/32 by default) through ``transformers``; features are ``pooler_output`` (768)."""

from __future__ import annotations

import torch
from torch import nn

from pvm_mbrl.encoders.preprocessing import CLIP_MEAN, CLIP_STD, Preprocessing
from pvm_mbrl.encoders.vit import ViTEncoder
from pvm_mbrl.encoders.weights import load_hf_model


class ClipStem(nn.Module):
    def __init__(self, embeddings: nn.Module, pre_norm: nn.Module):
        super().__init__()
        self.embeddings, self.pre_norm = embeddings, pre_norm

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.pre_norm(self.embeddings(pixels))


class ClipBlock(nn.Module):
    """A CLIP encoder layer called without masks, returning only the hidden states."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.layer(hidden, None, None)[0]


class PooledClassToken(nn.Module):
    """``pooler_output``: the post-LayerNorm [CLS] token."""

    def __init__(self, post_norm: nn.Module):
        super().__init__()
        self.post_norm = post_norm

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.post_norm(hidden[:, 0])


class ClipEncoder(ViTEncoder):
    """CLIP's preprocessing: resize 224 (bicubic), centre-crop 224, CLIP's mean/std."""

    default_weights = "openai/clip-vit-base-patch32"

    def __init__(self, image_size: int = 224, weights: str = default_weights, allow_download: bool = False,
                 **finetune):
        super().__init__(image_size, **finetune)
        from transformers import CLIPVisionModel

        vision = load_hf_model(CLIPVisionModel, weights, allow_download).vision_model
        config = vision.config
        self.preprocessing = Preprocessing(config.image_size, config.image_size, CLIP_MEAN, CLIP_STD)
        self.stem = ClipStem(vision.embeddings, vision.pre_layrnorm)
        self.blocks = nn.ModuleList(ClipBlock(layer) for layer in vision.encoder.layers)
        self.head = PooledClassToken(vision.post_layernorm)
        self.heads = config.num_attention_heads
        self._feature_shape = (config.hidden_size,)
        self.setup_finetuning()

    def last_block_query_key(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        last = self.blocks[-1].layer
        x = last.layer_norm1(hidden)
        return last.self_attn.q_proj(x), last.self_attn.k_proj(x)
