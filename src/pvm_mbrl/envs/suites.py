"""Shift suites as data, shared by every env family: ``envs/suites/<family>.yaml``.

A suite is a name, the family-specific parameters its env reads (weather, object split, ...) and the two
constants that normalise its returns, ``G_norm = (G - G_random) / (G_max - G_random)`` (the paper's eq. 1,
``analysis.measures.suite_normalised_return``). Groups name several suites whose normalised returns are
averaged (the paper's "weak" = its two weak configurations). Keeping this as data lets the preview, the
normalisation measurement and evaluation treat the driving, table-top and dmc families alike. This module only
reads the files: ``envs.random_returns`` measures and writes the random-policy constants.

File layout (no comments: ``random_returns.measure_random_returns`` rewrites the file)::

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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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


def suite_families() -> list[str]:
    """Env families that have a suite file."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(family: str) -> Path:
    """The suite file of ``family``; ValueError naming the families that have one."""
    path = SUITES_DIR / f"{family}.yaml"
    if not path.exists():
        raise ValueError(f"env family {family!r} has no shift suites; families with suites: "
                         f"{', '.join(suite_families()) or 'none'}")
    return path


def load_suites(family: str, task: str | None = None) -> SuiteSet:
    """Read and check a family's suite file; ``task`` picks the constants of families that keep them per task."""
    path = suite_path(family)
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
