"""Pre-trained encoders: a backbone split into stem -> blocks -> head, with fine-tuning modes and caching.

Fine-tuning modes (``encoder.finetune``):
- ``frozen``: no backbone weight trains; every module stays in eval mode, so BatchNorm statistics never move.
- ``partial``: only the last ``trainable_blocks`` blocks train (default: a quarter of them, the paper's text,
  e.g. 3 of DINOv2's 12); the stem (patch/stem embeddings), earlier blocks and a ViT's final norm stay frozen.
- ``full``: every backbone weight trains.
Trainable backbone weights form their own optimiser group at ``lr_scale`` x the model's learning rate
(default 0.1: 4e-6 against 4e-5, as the paper).

Caching: the frozen part's output never changes, so it can be computed once when a step is collected and
stored in replay (fp16): the whole feature for ``frozen``, the output of the frozen prefix for ``partial``.
"""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig
from torch import nn

from pvm_mbrl.encoders.base import ImageEncoder
from pvm_mbrl.encoders.preprocessing import Preprocessing

FINETUNE_MODES = ("frozen", "partial", "full")
MIN_IMAGE_SIZE = 32


def default_trainable_blocks(num_blocks: int) -> int:
    """The paper's "last quarter" of the blocks (3 of 12), at least one."""
    return max(1, math.ceil(num_blocks / 4))


class PretrainedEncoder(ImageEncoder):
    """Subclasses set ``preprocessing``, ``stem``, ``blocks`` (ordered), ``head`` and ``_feature_shape``."""

    preprocessing: Preprocessing
    stem: nn.Module
    blocks: nn.ModuleList
    head: nn.Module
    _feature_shape: tuple[int, ...]

    def __init__(self, image_size: int, finetune: str = "frozen", trainable_blocks: int | None = None,
                 lr_scale: float = 0.1, cache: bool = True):
        super().__init__(image_size)
        if finetune not in FINETUNE_MODES:
            raise ValueError(f"unknown finetune mode {finetune!r}; choose one of: {', '.join(FINETUNE_MODES)}")
        if lr_scale <= 0:
            raise ValueError(f"encoder.lr_scale must be > 0, got {lr_scale}")
        self.finetune, self.lr_scale, self.use_cache = finetune, lr_scale, cache
        self._requested_trainable = trainable_blocks

    @classmethod
    def check_image_size(cls, image_size: int) -> None:
        if image_size < MIN_IMAGE_SIZE:
            raise ValueError(f"image size {image_size} is too small for {cls.__name__}: need >= {MIN_IMAGE_SIZE} "
                             "(images are resized to the model's input, 224 by default)")

    def check_images(self, images: torch.Tensor) -> None:
        """Any uint8 RGB image size is accepted: preprocessing resizes to the model's input."""
        if images.dtype != torch.uint8 or images.shape[-1] != 3 or min(images.shape[-3:-1]) < MIN_IMAGE_SIZE:
            raise ValueError(f"{type(self).__name__} expects uint8 RGB images [..., H, W, 3] with H, W >= "
                             f"{MIN_IMAGE_SIZE}, got {images.dtype} {tuple(images.shape)}")

    @staticmethod
    def finetune_kwargs(cfg: DictConfig) -> dict:
        return {"finetune": cfg.get("finetune", "frozen"), "trainable_blocks": cfg.get("trainable_blocks"),
                "lr_scale": cfg.get("lr_scale", 0.1), "cache": cfg.get("cache", True)}

    def setup_finetuning(self) -> None:
        """Call at the end of a subclass's ``__init__``, once the backbone exists."""
        total = len(self.blocks)
        trainable = self._requested_trainable
        if trainable is None:
            trainable = default_trainable_blocks(total)
        if not 1 <= trainable <= total:
            raise ValueError(f"encoder.trainable_blocks must be between 1 and {total} for {type(self).__name__}, "
                             f"got {trainable}")
        self.trainable_blocks = {"frozen": 0, "partial": trainable, "full": total}[self.finetune]
        self.frozen_blocks = total - self.trainable_blocks
        self.requires_grad_(False)
        for block in self.blocks[self.frozen_blocks:]:
            block.requires_grad_(True)
        if self.finetune == "full":
            self.requires_grad_(True)
        self.train(False)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self._feature_shape

    def frozen_modules(self) -> list[nn.Module]:
        """Stem, frozen blocks and head (a ViT's final norm stays frozen in partial mode, as the paper's code)."""
        return [] if self.finetune == "full" else [self.stem, *self.blocks[: self.frozen_blocks], self.head]

    def train(self, mode: bool = True) -> PretrainedEncoder:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()  # frozen BatchNorm keeps its ImageNet statistics
        return self

    def parameter_groups(self, lr: float) -> list[dict]:
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"name": "encoder_finetune", "params": params, "lr": lr * self.lr_scale}] if params else []

    # ---------------------------------------------------------------- forward passes
    def run_blocks(self, hidden: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for block in self.blocks[start:stop]:
            hidden = block(hidden)
        return hidden

    def prefix(self, pixels: torch.Tensor) -> torch.Tensor:
        """Stem and frozen blocks: the part whose output never changes during training."""
        return self.run_blocks(self.stem(self.preprocessing(pixels)), 0, self.frozen_blocks)

    def suffix(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(self.run_blocks(hidden, self.frozen_blocks, len(self.blocks)))

    def encode_float(self, pixels: torch.Tensor) -> torch.Tensor:
        lead = pixels.shape[:-3]
        return self.suffix(self.prefix(pixels.reshape(-1, *pixels.shape[-3:]))).reshape(*lead, *self._feature_shape)

    @property
    def caches(self) -> bool:
        return self.use_cache and self.finetune != "full"

    def cache(self, images: torch.Tensor) -> torch.Tensor | None:
        if not self.caches:
            return None
        self.check_images(images)
        with torch.no_grad():
            hidden = self.prefix(images.float())
            out = self.head(hidden) if self.finetune == "frozen" else hidden
        return out.to(torch.float16)

    def forward_cached(self, cache: torch.Tensor) -> torch.Tensor:
        lead = cache.shape[: cache.dim() - len(self.cache_shape)]
        flat = cache.reshape(-1, *self.cache_shape).float()
        out = flat if self.finetune == "frozen" else self.suffix(flat)
        return out.reshape(*lead, *self._feature_shape)

    @property
    def cache_shape(self) -> tuple[int, ...]:
        """Shape of one image's cache entry (inferred once from a blank image)."""
        if not hasattr(self, "_cache_shape"):
            blank = torch.zeros(1, self.image_size, self.image_size, 3, dtype=torch.uint8,
                                device=next(self.parameters()).device)
            self._cache_shape = tuple(self.cache(blank).shape[1:])
        return self._cache_shape
