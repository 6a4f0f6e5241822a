"""Tiny random-init DINOv2 and CLIP models saved with ``save_pretrained``: the path a user's weights take."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dinov2_dir(tmp_path_factory) -> str:
    from transformers import Dinov2Config, Dinov2Model

    path = tmp_path_factory.mktemp("dinov2")
    config = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                          patch_size=14, image_size=56)
    Dinov2Model(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory) -> str:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    path = tmp_path_factory.mktemp("clip")
    config = CLIPVisionConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                              patch_size=16, image_size=64)
    CLIPVisionModel(config).save_pretrained(path)
    return str(path)


@pytest.fixture
def encoder_factory(tiny_dinov2_dir, tiny_clip_dir):
    """Build any registered pre-trained encoder by name with fine-tuning options."""
    from omegaconf import OmegaConf

    from pvm_mbrl.encoders.registry import make_encoder

    weights = {"dinov2": tiny_dinov2_dir, "clip": tiny_clip_dir}

    def build(name: str, image_size: int = 64, **options):
        cfg = OmegaConf.create({"name": name, "weights": weights.get(name), **options})
        return make_encoder(cfg, image_size, model_depth=4)

    return build
