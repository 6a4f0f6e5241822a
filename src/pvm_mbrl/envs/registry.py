"""Environment registry: ``env.name`` is ``<family>:<task>``, e.g. ``dmc:cartpole-balance``."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import torch
from omegaconf import DictConfig


def _make_dmc(task: str, cfg: DictConfig, seed: int) -> gym.Env:
    from pvm_mbrl.envs.dmc import DMCEnv

    return DMCEnv(task, size=cfg.size, action_repeat=cfg.action_repeat, camera=cfg.get("camera", -1),
                  vectors=cfg.get("vectors", False), seed=seed, suite=cfg.get("suite", "id"))


def _dmc_tasks() -> list[str]:
    from pvm_mbrl.envs.dmc import dmc_task_names

    return dmc_task_names()


def _make_driving(task: str, cfg: DictConfig, seed: int) -> gym.Env:
    from pvm_mbrl.envs.driving import DrivingEnv

    return DrivingEnv(task, size=cfg.size, action_repeat=cfg.action_repeat, suite=cfg.get("suite", "id"),
                      vehicles=cfg.get("vehicles", 40), max_frames=cfg.get("max_frames", 1000), seed=seed)


def _driving_tasks() -> list[str]:
    return ["highway"]  # driving.TASKS, kept here so validating a config does not import MuJoCo and highway-env


def _tabletop_options(cfg: DictConfig) -> dict:
    return dict(size=cfg.size, suite=cfg.get("suite", "id"), split_seed=cfg.get("split_seed", 0),
                control_mode=cfg.get("control_mode", "pd_joint_delta_pos"), action_repeat=cfg.action_repeat,
                episode_steps=cfg.get("episode_steps", 50), masks=cfg.get("masks", False),
                vectors=cfg.get("vectors", False), asset_dir=cfg.get("asset_dir"), device=cfg.get("device", "auto"),
                run_dir=cfg.get("manifest_dir"))


def _make_tabletop(task: str, cfg: DictConfig, seed: int) -> gym.Env:
    from pvm_mbrl.envs.tabletop import TabletopEnv

    return TabletopEnv(task, terminate_on_success=cfg.get("terminate_on_success", False), seed=seed,
                       **_tabletop_options(cfg))


def _tabletop_tasks() -> list[str]:
    return ["pick_single_ycb"]  # kept here so validating a config does not import ManiSkill


# family -> (factory(task, env config, seed), list of valid tasks)
ENV_FAMILIES: dict[str, tuple[Callable[[str, DictConfig, int], gym.Env], Callable[[], list[str]]]] = {
    "dmc": (_make_dmc, _dmc_tasks),
    "driving": (_make_driving, _driving_tasks),
    "tabletop": (_make_tabletop, _tabletop_tasks),
}

gym.register(id="pvm_mbrl/DMC-v0", entry_point="pvm_mbrl.envs.dmc:DMCEnv")
gym.register(id="pvm_mbrl/Driving-v0", entry_point="pvm_mbrl.envs.driving:DrivingEnv")
gym.register(id="pvm_mbrl/Tabletop-v0", entry_point="pvm_mbrl.envs.tabletop:TabletopEnv")


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


def make_batched_env(cfg: DictConfig, seed: int) -> gym.vector.VectorEnv | None:
    """A family's own batched simulator when it has one that pays off here: ManiSkill's GPU simulation runs
    ``num_envs`` table-top envs in one process on CUDA. ``None`` means: one env per worker process."""
    family, task = parse_env_name(cfg.name)
    if family == "tabletop" and cfg.num_envs > 1 and torch.cuda.is_available():
        from pvm_mbrl.envs.tabletop import TabletopVectorEnv

        return TabletopVectorEnv(cfg.num_envs, task, seed=seed, **_tabletop_options(cfg))
    return None


def make_env(cfg: DictConfig, seed: int) -> gym.Env:
    family, task = parse_env_name(cfg.name)
    return ENV_FAMILIES[family][0](task, cfg, seed)
