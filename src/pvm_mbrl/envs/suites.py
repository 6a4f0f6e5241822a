"""Shift suites as data, shared by every env family: ``envs/suites/<family>.yaml``.

A suite is a name, the family-specific parameters its env reads (weather, object split, ...) and the two
constants that normalise its returns, ``G_norm = (G - G_random) / (G_max - G_random)`` (the paper's eq. 1).
Groups name several suites whose normalised returns are averaged (the paper's "weak" = its two weak
configurations). Keeping this as data lets the preview, the normalisation measurement and evaluation treat
the driving, table-top and dmc families alike.

File layout (no comments: ``measure_random_returns`` rewrites the file)::

    family: driving
    description: ...
    default: id
    groups: {weak: [weak_high_light, weak_noisy_low_light]}
    preview: {steps: 30, action: [0.0, 0.6]}      # what ``pvm-mbrl envs preview`` does before its snapshot
    suites:
      id:
        description: ...
        params: {...}                             # read by the family's env only
        normalisation: {max_return: 1371.4, random_return: null, random_return_std: null, random_episodes: 0}

A family of many tasks (``dmc``) sets ``normalisation_per_task: true`` and keeps each task's constants under
``normalisation.tasks.<task>`` (overriding the suite-level ones, e.g. ``max_return``); ``load_suites(family,
task)`` resolves them, and a task without measured constants has ``random_return: null``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import takewhile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from pvm_mbrl.analysis.measures import normalised_return

SUITES_DIR = Path(__file__).resolve().parent / "suites"


@dataclass(frozen=True)
class Suite:
    """One evaluation condition of an env family, with the constants that normalise its returns."""

    family: str
    name: str
    description: str
    params: dict[str, Any]
    max_return: float
    random_return: float | None = None
    random_return_std: float | None = None
    random_episodes: int = 0
    task: str | None = None  # the task whose constants these are (families with per-task constants)

    def normalise(self, episode_return: float) -> float:
        """The paper's normalised return: 0 for a random policy, 1 for the stated maximum."""
        if self.random_return is None:
            task = f" --task {self.task}" if self.task else ""
            where = f" for task {self.task}" if self.task else ""
            raise ValueError(f"suite {self.family}:{self.name} has no measured random return{where} yet; run "
                             f"`pvm-mbrl envs normalise {self.family}{task}`")
        return float(normalised_return(episode_return, self.random_return, self.max_return))


@dataclass(frozen=True)
class SuiteSet:
    """All suites of one family, its groups, and what the preview command does."""

    family: str
    description: str
    default: str
    suites: dict[str, Suite]
    groups: dict[str, list[str]] = field(default_factory=dict)
    preview: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    per_task: bool = False      # normalisation constants are kept per task (``normalisation.tasks``)
    task: str | None = None     # the task whose constants ``suites`` carry

    def get(self, name: str) -> Suite:
        if name not in self.suites:
            hint = (f" ({name!r} is a group: evaluate each of {', '.join(self.groups[name])})"
                    if name in self.groups else "")
            raise ValueError(f"unknown {self.family} suite {name!r}{hint}; choose one of: {', '.join(self.suites)}")
        return self.suites[name]

    def members(self, name: str) -> list[str]:
        """The suites a suite or group name stands for."""
        if name in self.groups:
            return list(self.groups[name])
        return [self.get(name).name]

    def normalised_score(self, name: str, mean_returns: Mapping[str, float]) -> float:
        """Normalised return of a suite, or the average over a group's suites (as the paper reports them)."""
        members = self.members(name)
        missing = [m for m in members if m not in mean_returns]
        if missing:
            raise ValueError(f"{self.family}:{name} needs mean returns for {', '.join(missing)}")
        return float(np.mean([self.suites[m].normalise(mean_returns[m]) for m in members]))


def suite_families() -> list[str]:
    """Env families that have a suite file."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def _suite_path(family: str) -> Path:
    path = SUITES_DIR / f"{family}.yaml"
    if not path.exists():
        raise ValueError(f"env family {family!r} has no shift suites; families with suites: "
                         f"{', '.join(suite_families()) or 'none'}")
    return path


def load_suites(family: str, task: str | None = None) -> SuiteSet:
    """Read and check a family's suite file; ``task`` picks the constants of families that keep them per task."""
    path = _suite_path(family)
    raw = yaml.safe_load(path.read_text())
    if raw.get("family") != family or not isinstance(raw.get("suites"), dict) or not raw["suites"]:
        raise ValueError(f"{path}: expected 'family: {family}' and a non-empty 'suites' mapping")
    per_task = bool(raw.get("normalisation_per_task", False))
    suites = {}
    for name, entry in raw["suites"].items():
        norm = dict(entry.get("normalisation") or {})
        tasks = norm.pop("tasks", None) or {}
        if tasks and not per_task:
            raise ValueError(f"{path}: suite {name!r} has normalisation.tasks but the file does not set "
                             f"'normalisation_per_task: true'")
        if per_task:
            norm = {"max_return": norm.get("max_return"), **((tasks.get(task) or {}) if task else {})}
        if norm.get("max_return") is None:
            raise ValueError(f"{path}: suite {name!r} lacks normalisation.max_return")
        suites[name] = Suite(family, name, entry.get("description", ""), dict(entry.get("params") or {}),
                             float(norm["max_return"]), norm.get("random_return"), norm.get("random_return_std"),
                             int(norm.get("random_episodes", 0)), task if per_task else None)
    groups = {k: list(v) for k, v in (raw.get("groups") or {}).items()}
    for group, members in groups.items():
        unknown = [m for m in members if m not in suites]
        if group in suites or unknown:
            raise ValueError(f"{path}: group {group!r} must not shadow a suite and may only list suites "
                             f"({', '.join(suites)}); bad: {unknown or group}")
    default = raw.get("default", next(iter(suites)))
    if default not in suites:
        raise ValueError(f"{path}: default suite {default!r} is not one of {', '.join(suites)}")
    return SuiteSet(family, raw.get("description", ""), default, suites, groups, dict(raw.get("preview") or {}),
                    path, per_task, task if per_task else None)


def load_suite(family: str, name: str, task: str | None = None) -> Suite:
    return load_suites(family, task).get(name)


def family_env_config(family: str, **overrides: Any):
    """The family's env preset (``conf/env/<family>.yaml``) with overrides, as ``make_env`` takes it."""
    from omegaconf import OmegaConf

    from pvm_mbrl.training.config import CONF_DIR

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
        from pvm_mbrl.envs.registry import parse_env_name

        parse_env_name(f"{family}:{task}")  # names the known tasks on error
        overrides["name"] = f"{family}:{task}"
    return family_env_config(family, **overrides)


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
    from pvm_mbrl.envs.registry import make_env
    from pvm_mbrl.envs.spaces import action_info, random_actions, to_env_action

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
    path = _suite_path(family)
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
