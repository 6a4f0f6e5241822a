"""Environment registry: ``env.name`` is ``<family>:<task>``, e.g. ``dmc:cartpole-balance``."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
from omegaconf import DictConfig


def _make_dmc(task: str, cfg: DictConfig, seed: int) -> gym.Env:
    from pvm_mbrl.envs.dmc import DMCEnv

    return DMCEnv(task, size=cfg.size, action_repeat=cfg.action_repeat, camera=cfg.get("camera", -1),
                  vectors=cfg.get("vectors", False), seed=seed)


def _dmc_tasks() -> list[str]:
    from pvm_mbrl.envs.dmc import dmc_task_names

    return dmc_task_names()


# family -> (factory(task, env config, seed), list of valid tasks)
ENV_FAMILIES: dict[str, tuple[Callable[[str, DictConfig, int], gym.Env], Callable[[], list[str]]]] = {
    "dmc": (_make_dmc, _dmc_tasks),
}

gym.register(id="pvm_mbrl/DMC-v0", entry_point="pvm_mbrl.envs.dmc:DMCEnv")


def parse_env_name(name: str) -> tuple[str, str]:
    """Split ``family:task`` and check both parts, naming the accepted values on error."""
    family, _, task = name.partition(":")
    if family not in ENV_FAMILIES:
        raise ValueError(f"unknown env {name!r}; env names are <family>:<task> with family one of "
                         f"{', '.join(sorted(ENV_FAMILIES))} (e.g. dmc:cartpole-balance)")
    tasks = ENV_FAMILIES[family][1]()
    if task not in tasks:
        raise ValueError(f"unknown {family} task {task!r} in env {name!r}; known tasks: {', '.join(tasks)}")
    return family, task


def make_env(cfg: DictConfig, seed: int) -> gym.Env:
    family, task = parse_env_name(cfg.name)
    return ENV_FAMILIES[family][0](task, cfg, seed)
