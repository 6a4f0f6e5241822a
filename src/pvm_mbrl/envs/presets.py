"""A family's env preset (``conf/env/<family>.yaml``) as ``make_env`` takes it, for tools that build envs by family
(the suite preview, the random-return measurement, the env benchmark)."""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from pvm_mbrl.envs.registry import parse_env_name
from pvm_mbrl.resources import CONF_DIR


def family_env_config(family: str, **overrides: Any):
    """The family's env preset (``conf/env/<family>.yaml``) with overrides, as ``make_env`` takes it."""
    path = CONF_DIR / "env" / f"{family}.yaml"
    if not path.exists():
        raise ValueError(f"env family {family!r} has no preset {path}")
    cfg = OmegaConf.load(path)
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def preset_task(family: str) -> str:
    """The task of a family's env preset (``conf/env/<family>.yaml``), e.g. ``cartpole-balance`` for ``dmc``."""
    return str(family_env_config(family).name).partition(":")[2]


def family_task_env_config(family: str, task: str | None = None, **overrides: Any):
    """The family's env preset for ``task`` (default: the preset's own task), with overrides."""
    if task is not None:
        parse_env_name(f"{family}:{task}")  # names the known tasks on error
        overrides["name"] = f"{family}:{task}"
    return family_env_config(family, **overrides)
