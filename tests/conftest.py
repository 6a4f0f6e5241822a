"""Shared fixtures: a tiny model config so agent tests run in seconds on 2 cores."""

from __future__ import annotations

import os

import pytest
import torch

# Tests may run beside each other (and beside a benchmark): one thread each avoids OpenMP stalls.
torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "egl")

TINY = [
    "model.deter=64", "model.hidden=32", "model.classes=4", "model.depth=4", "model.units=32",
    "batch_size=2", "batch_length=8", "env.size=32", "threads=1", "precision=fp32",
]


@pytest.fixture
def tiny_overrides(tmp_path) -> list[str]:
    return [*TINY, f"run_dir={tmp_path / 'run'}"]


@pytest.fixture
def tiny_config(tiny_overrides):
    from pvm_mbrl.training.config import compose_config

    return compose_config(tiny_overrides)
