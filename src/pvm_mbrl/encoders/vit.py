"""What every ViT encoder shares: construction from config and [CLS]-attention maps."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
from omegaconf import DictConfig

from pvm_mbrl.encoders.pretrained import PretrainedEncoder
from pvm_mbrl.encoders.saliency import cls_attention, patches_to_image


class ViTEncoder(PretrainedEncoder):
    default_weights: ClassVar[str]
    heads: int
    prefix_tokens: int = 1  # [CLS] (+ register tokens)

    @classmethod
    def from_config(cls, cfg: DictConfig, image_size: int, model_depth: int) -> ViTEncoder:
        return cls(image_size, weights=cfg.get("weights") or cls.default_weights,
                   allow_download=cfg.get("allow_download", False), **cls.finetune_kwargs(cfg))

    @abstractmethod
    def last_block_query_key(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last block's attention query and key projections for its input ``hidden``."""

    @torch.no_grad()
    def saliency_map(self, images: torch.Tensor) -> torch.Tensor:
        """The last block's [CLS]-to-patch attention, averaged over heads, up-sampled to the image size."""
        self.check_images(images)
        hidden = self.run_blocks(self.stem(self.preprocessing(images.float())), 0, len(self.blocks) - 1)
        query, key = self.last_block_query_key(hidden)
        return patches_to_image(cls_attention(query, key, self.heads, self.prefix_tokens), images.shape[-2])
