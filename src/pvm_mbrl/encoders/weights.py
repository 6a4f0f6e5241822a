"""Finding pre-trained weights: a local directory, or a hub id already in the local cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def attention_implementation() -> str:
    """PyTorch's fused attention on GPUs; plain attention on CPUs, where the fused kernel's backward pass
    was measured ~4x slower for ViT-S/14's 257 tokens."""
    return "sdpa" if torch.cuda.is_available() else "eager"


def load_hf_model(model_class: Any, weights: str, allow_download: bool = False):
    """``model_class.from_pretrained`` from a directory or a cached hub id, with advice when neither works.

    Downloads only when ``allow_download`` is set: machines without internet (and the tests) never try.
    """
    options = {"attn_implementation": attention_implementation()}
    if Path(weights).expanduser().is_dir():
        return model_class.from_pretrained(str(Path(weights).expanduser()), **options)
    try:
        return model_class.from_pretrained(weights, local_files_only=not allow_download, **options)
    except OSError as error:
        raise ValueError(
            f"cannot load weights {weights!r} for {model_class.__name__}: not a local directory and not in the "
            f"Hugging Face cache ({error.__class__.__name__}). On a machine with internet run "
            f"`huggingface-cli download {weights} --local-dir DIR` and set encoder.weights=DIR, or fill the cache "
            f"(HF_HOME) there and copy it here, or set encoder.allow_download=true where downloads are possible."
        ) from error
