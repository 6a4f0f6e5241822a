"""Measuring each shift suite's random-policy return (``pvm-mbrl envs normalise FAMILY``) and storing it in the
family's suite file (``envs/suites/<family>.yaml``), where ``envs.suites`` reads it as ``Suite.random_return``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import takewhile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pvm_mbrl.envs.presets import family_task_env_config, preset_task
from pvm_mbrl.envs.registry import make_env
from pvm_mbrl.envs.spaces import action_info, random_actions, to_env_action
from pvm_mbrl.envs.suites import load_suites, suite_path


def random_policy_returns(family: str, suite: str, episodes: int, seed: int = 0,
                          on_episode: Callable[[float], None] | None = None, task: str | None = None) -> list[float]:
    """Returns of uniformly random actions (the training prefill's policy) on one suite (of ``task``, default
    the family preset's).

    Episode ``k`` uses env seed ``seed + k`` and an action stream seeded the same way for every suite, so
    suites differ only in what the suite changes.
    """
    return random_policy_returns_for(family_task_env_config(family, task, suite=suite), episodes, seed, on_episode)


def random_policy_returns_for(env_cfg: Any, episodes: int, seed: int = 0,
                              on_episode: Callable[[float], None] | None = None) -> list[float]:
    """Random-policy returns of the env an ``env`` config block describes (any family, suites or not)."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = make_env(env_cfg, seed)
    discrete = action_info(env.action_space)[1]
    returns = []
    try:
        for k in range(episodes):
            rng = np.random.default_rng([seed, k])
            env.reset(seed=seed + k)
            total, done = 0.0, False
            while not done:
                action = to_env_action(random_actions(env.action_space, 1, rng)[0], discrete)
                _, reward, terminated, truncated, _ = env.step(action)
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
            if on_episode:
                on_episode(total)
    finally:
        env.close()
    return returns


def measure_random_returns(family: str, episodes: int = 20, seed: int = 0, write: bool = True,
                           progress: bool = True, task: str | None = None) -> dict[str, tuple[float, float]]:
    """Measure each suite's random-policy mean return; with ``write``, store it in the suite file.

    ``task`` (default: the family preset's) is the task measured; families with per-task constants store them
    under that task.
    """
    from tqdm import tqdm

    suite_set = load_suites(family)
    if suite_set.per_task and task is None:
        task = preset_task(family)
    results = {}
    for name in suite_set.suites:
        label = f"{family}:{task}:{name}" if task else f"{family}:{name}"
        with tqdm(total=episodes, desc=label, disable=not progress, leave=False) as bar:
            returns = random_policy_returns(family, name, episodes, seed, lambda _: bar.update(), task)
        results[name] = (float(np.mean(returns)), float(np.std(returns)))
    if write:
        write_random_returns(family, results, episodes, task if suite_set.per_task else None)
    return results


def write_random_returns(family: str, results: Mapping[str, tuple[float, float]], episodes: int,
                         task: str | None = None) -> Path:
    """Store measured (mean, std) random returns in the family's suite file, keeping its leading comments.

    Families with per-task constants need ``task``: the values go under ``normalisation.tasks.<task>``.
    """
    path = suite_path(family)
    text = path.read_text()
    header = "".join(line + "\n" for line in takewhile(lambda line: line.startswith("#"), text.splitlines()))
    raw = yaml.safe_load(text)
    per_task = bool(raw.get("normalisation_per_task", False))
    if per_task and task is None:
        raise ValueError(f"{family} keeps normalisation constants per task: name the task measured")
    if task is not None and not per_task:
        raise ValueError(f"{family} keeps one set of normalisation constants for all tasks ({path} does not set "
                         f"'normalisation_per_task: true'); measure without a task")
    for name, (mean, std) in results.items():
        if name not in raw["suites"]:
            raise ValueError(f"unknown {family} suite {name!r}; choose one of: {', '.join(raw['suites'])}")
        norm = raw["suites"][name].setdefault("normalisation", {})
        if per_task:
            tasks = norm.get("tasks") or {}
            norm["tasks"] = dict(sorted({**tasks, task: tasks.get(task) or {}}.items()))
            norm = norm["tasks"][task]
        norm.update(random_return=round(mean, 3), random_return_std=round(std, 3), random_episodes=episodes)
    path.write_text(header + yaml.safe_dump(raw, sort_keys=False, width=110))
    return path
