"""The interface every image encoder implements, so the world model never depends on which one it has."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from omegaconf import DictConfig
from torch import nn

from pvm_mbrl.encoders.saliency import gradient_saliency


class ImageEncoder(nn.Module, ABC):
    """Maps uint8 images ``[N, H, W, 3]`` to float features ``[N, *feature_shape]``.

    Subclasses declare the input size they accept and which parameters train at which learning rate,
    so the agent can build one optimiser over world model, actor, critic and encoder.
    """

    # Whether the flattened features enter the posterior through RMSNorm + SiLU (the paper's code does this
    # for pre-trained models; DreamerV3's CNN ends in its own norm + SiLU and needs none).
    features_need_norm = True

    def __init__(self, image_size: int):
        super().__init__()
        self.check_image_size(image_size)
        self.image_size = image_size

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: DictConfig, image_size: int, model_depth: int) -> ImageEncoder:
        """Build from the ``encoder`` config block; ``model_depth`` is the model preset's CNN depth."""

    @classmethod
    @abstractmethod
    def check_image_size(cls, image_size: int) -> None:
        """Raise ``ValueError`` naming the size and the accepted ones if ``image_size`` is unsupported."""

    @property
    @abstractmethod
    def feature_shape(self) -> tuple[int, ...]:
        """Shape of one image's features."""

    @property
    def feature_dim(self) -> int:
        return math.prod(self.feature_shape)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode uint8 images ``[N, H, W, 3]``."""
        self.check_images(images)
        return self.encode_float(images.float())

    @abstractmethod
    def encode_float(self, pixels: torch.Tensor) -> torch.Tensor:
        """Encode float pixels in [0, 255] ``[N, H, W, 3]`` (differentiable, for saliency maps)."""

    def saliency_map(self, images: torch.Tensor) -> torch.Tensor:
        """Where the encoder looks, ``[N, H, W]`` in [0, 1]; gradient saliency unless a subclass knows better."""
        return gradient_saliency(self, images)

    # Feature caching: encoders whose leading computation never trains can store its output in replay.
    @property
    def caches(self) -> bool:
        """Whether :meth:`cache` returns something to store."""
        return False

    def cache(self, images: torch.Tensor) -> torch.Tensor | None:
        """What replay may store instead of recomputing it every update (``None``: nothing to cache)."""
        return None

    def forward_cached(self, cache: torch.Tensor) -> torch.Tensor:
        """Features from a stored :meth:`cache` output."""
        raise NotImplementedError(f"{type(self).__name__} does not cache features")

    def parameter_groups(self, lr: float) -> list[dict]:
        """Trainable parameter groups with their learning rates (default: all at the model's ``lr``)."""
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"name": "encoder", "params": params, "lr": lr}] if params else []

    def check_images(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.shape[-3:] != (self.image_size, self.image_size, 3):
            raise ValueError(
                f"{type(self).__name__} expects uint8 images [..., {self.image_size}, {self.image_size}, 3], "
                f"got {images.dtype} {tuple(images.shape)}"
            )
