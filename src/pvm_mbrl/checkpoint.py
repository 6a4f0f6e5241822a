"""Atomic checkpoints: write to a temporary file, fsync, then rename over the old one."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from pvm_mbrl.atomic import atomic_write


def save_checkpoint(path: str | Path, state: dict) -> None:
    """A crash at any moment leaves either the previous checkpoint or the new one, never a partial file."""
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict:
    return torch.load(path, map_location=device, weights_only=False)


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
