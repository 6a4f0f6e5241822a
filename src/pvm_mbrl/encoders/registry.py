"""Encoder registry: ``encoder.name`` in the config picks a class from here."""

from __future__ import annotations

from omegaconf import DictConfig

from pvm_mbrl.encoders.base import ImageEncoder
from pvm_mbrl.encoders.cnn import CNNEncoder

ENCODERS: dict[str, type[ImageEncoder]] = {
    "cnn": CNNEncoder,
}


def encoder_class(name: str) -> type[ImageEncoder]:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known encoders: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]


def make_encoder(cfg: DictConfig, image_size: int, model_depth: int) -> ImageEncoder:
    return encoder_class(cfg.name).from_config(cfg, image_size, model_depth)
