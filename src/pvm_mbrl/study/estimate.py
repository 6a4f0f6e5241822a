"""How much compute a run needs, from its config alone: env steps, gradient updates, images through the encoder,
evaluation episodes, and hours at per-update, per-env-step and per-evaluation-episode costs that a study preset
states (with where those costs come from)."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

from omegaconf import DictConfig

from pvm_mbrl.evaluation.settings import suite_names
from pvm_mbrl.training.config import sequence_length


@dataclass(frozen=True)
class RunEstimate:
    env_steps: int
    agent_steps: int
    updates: int
    replayed_frames: int     # sequence steps through the world model (updates x batch x length)
    encoder_images: int      # images through the encoder's trained part (plus one pass per collected frame)
    hours: float | None      # training; None when the preset states no costs
    evaluation_episodes: int = 0            # over every suite of the run's env
    evaluation_hours: float | None = None   # None when the preset states no cost per evaluation episode

    @property
    def total_hours(self) -> float | None:
        return None if self.hours is None else self.hours + (self.evaluation_hours or 0.0)


def queue_wall_hours(hours: Sequence[float], workers: int) -> float:
    """Wall time of runs taken from a queue in this order by ``workers`` workers, each starting the next run as soon
    as it is free (how joblib, Ray and a cluster's scheduler hand out jobs): at least the total over ``workers`` and
    the longest run, and more when a long run starts late and ends alone."""
    free_at = [0.0] * max(1, workers)
    for run_hours in hours:
        heapq.heapreplace(free_at, free_at[0] + run_hours)
    return max(free_at)


def gradient_updates(steps: int, prefill: int, action_repeat: int, num_envs: int, train_ratio: float,
                     batch_steps: int, sequence_length: int) -> int:
    """Updates of a run as the training loop counts them: each loop iteration adds one step per env and owes
    ``num_envs x train_ratio / batch_steps`` updates, from the iteration where ``prefill`` env steps are collected
    and replay can sample ``batch_steps`` sequences of ``sequence_length`` steps (DreamerV3's start) on."""
    env_steps_per_iteration = num_envs * action_repeat
    iterations = -(-steps // env_steps_per_iteration)
    first = max(-(-prefill // env_steps_per_iteration), -(-batch_steps // num_envs) + sequence_length - 1)
    return int(max(0, iterations - first + 1) * num_envs * train_ratio / batch_steps)


def encoder_images(agent_steps: int, replayed_frames: int, finetune: str, cache: bool) -> int:
    """Images the encoder sees: every collected frame once (acting or caching), plus every replayed frame unless
    a frozen encoder's features come from the replay cache."""
    if finetune == "frozen" and cache:
        return agent_steps
    return agent_steps + replayed_frames


def estimate_run(cfg: DictConfig, costs: dict, episodes_per_suite: int = 0) -> RunEstimate:
    """The run's compute, evaluated with ``episodes_per_suite`` on every suite of its env; ``costs`` may hold
    ``update_seconds``, ``env_step_seconds`` and ``eval_episode_seconds``, each a mapping from a model label (``cnn``,
    ``dinov2 frozen``) or env family to seconds, with ``default`` as the fallback."""
    repeat = int(cfg.env.action_repeat)
    agent_steps = int(cfg.steps) // repeat
    batch_steps = int(cfg.batch_size) * int(cfg.batch_length)
    updates = gradient_updates(int(cfg.steps), int(cfg.prefill), repeat, int(cfg.env.num_envs),
                               float(cfg.train_ratio), batch_steps, sequence_length(cfg))
    finetune = str(cfg.encoder.get("finetune") or "scratch")
    label = str(cfg.encoder.name) if finetune == "scratch" else f"{cfg.encoder.name} {finetune}"
    images = encoder_images(agent_steps, updates * batch_steps, finetune, bool(cfg.encoder.get("cache", False)))
    evaluation_episodes = episodes_per_suite * len(suite_names(str(cfg.env.name)))

    def cost(table: dict, key: str) -> float:
        return float(table.get(key, table.get("default", 0.0)))

    hours = evaluation_hours = None
    if costs.get("update_seconds") and costs.get("env_step_seconds"):
        family = str(cfg.env.name).split(":")[0]
        seconds = updates * cost(costs["update_seconds"], label) + \
            agent_steps * cost(costs["env_step_seconds"], family)
        hours = seconds / 3600
    if costs.get("eval_episode_seconds"):
        evaluation_hours = evaluation_episodes * cost(costs["eval_episode_seconds"], label) / 3600
    return RunEstimate(int(cfg.steps), agent_steps, updates, updates * batch_steps, images, hours,
                       evaluation_episodes, evaluation_hours)
