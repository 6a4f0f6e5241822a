"""Encoder registry: ``encoder.name`` in the config picks a class from here.

Adding a pre-trained model is one small file: subclass ``ViTEncoder`` (a ``transformers`` ViT) or
``ConvBackboneEncoder`` (a CNN), set ``preprocessing``, ``stem``, ``blocks`` and ``head``, call
``setup_finetuning()``/``finish()``, then add it here (see README, "Adding an encoder").
"""

from __future__ import annotations

from importlib import import_module

from omegaconf import DictConfig

from pvm_mbrl.encoders.base import ImageEncoder

# name -> "module:Class", imported on use so a missing optional package only affects its own encoder
ENCODERS: dict[str, str] = {
    "cnn": "pvm_mbrl.encoders.cnn:CNNEncoder",
    "dinov2": "pvm_mbrl.encoders.dinov2:DinoV2Encoder",
    "clip": "pvm_mbrl.encoders.clip:ClipEncoder",
    "efficientnet_lite0": "pvm_mbrl.encoders.efficientnet:EfficientNetLite0Encoder",
    "mobilenet_v2": "pvm_mbrl.encoders.mobilenet:MobileNetV2Encoder",
}


def encoder_class(name: str) -> type[ImageEncoder]:
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; known encoders: {', '.join(sorted(ENCODERS))}")
    module, _, cls = ENCODERS[name].partition(":")
    return getattr(import_module(module), cls)


def make_encoder(cfg: DictConfig, image_size: int, model_depth: int) -> ImageEncoder:
    return encoder_class(cfg.name).from_config(cfg, image_size, model_depth)
