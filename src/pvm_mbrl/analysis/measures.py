"""The paper's measures (Jones et al. 2025, section IV-D): normalised return (also with a shift suite's constants),
relative drop from ID, window-smoothed learning curves and steps-to-threshold with its per-model summary (Table III).

A learning curve is a pair ``(steps, values)`` of equal-length 1-D arrays: env steps, strictly increasing, and the
(normalised) return measured at each. Per-seed data are dicts keyed by seed, per-model data dicts keyed by model name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from pvm_mbrl.envs.suites import Suite, SuiteSet

Curve = tuple[ArrayLike, ArrayLike]
"""A learning curve: (env steps, return at each step)."""


def finite_values(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a non-empty 1-D float array of finite numbers; ValueError naming ``name`` otherwise."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite entries: {array[~np.isfinite(array)][:5].tolist()}")
    return array


def as_curve(steps: ArrayLike, values: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """A checked learning curve: finite 1-D float arrays of equal length with strictly increasing steps."""
    steps_array, values_array = finite_values(steps, "steps"), finite_values(values, "values")
    if steps_array.size != values_array.size:
        raise ValueError(f"steps and values differ in length: {steps_array.size} steps, {values_array.size} values")
    decreasing = np.flatnonzero(np.diff(steps_array) <= 0)
    if decreasing.size:
        i = decreasing[0]
        raise ValueError(f"steps must be strictly increasing: steps[{i}]={steps_array[i]:g}, "
                         f"steps[{i + 1}]={steps_array[i + 1]:g}")
    return steps_array, values_array


def normalised_return(returns: ArrayLike, random_return: float, max_return: float) -> np.ndarray | float:
    """Paper eq. (1): ``G_norm = (G_a - G_r) / (G_m - G_r)``.

    ``returns`` (G_a) is one return or an array of them; ``random_return`` (G_r) is the suite's random-policy
    return and ``max_return`` (G_m) its theoretical maximum. 0 means random, 1 the maximum, below 0 worse than
    random. Returns a float for a scalar input, else an array of the input's shape.
    """
    if not (np.isfinite(random_return) and np.isfinite(max_return)):
        raise ValueError(f"random_return and max_return must be finite, got {random_return} and {max_return}")
    if max_return <= random_return:
        raise ValueError(f"max_return ({max_return}) must exceed random_return ({random_return}): "
                         "G_norm = (G_a - G_r) / (G_m - G_r) is undefined otherwise")
    array = np.asarray(returns, dtype=float)
    if array.size == 0:
        raise ValueError("returns is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"returns has non-finite entries: {array[~np.isfinite(array)][:5].tolist()}")
    normalised = (array - random_return) / (max_return - random_return)
    return float(normalised) if normalised.ndim == 0 else normalised



def suite_normalised_return(suite: Suite, episode_return: float) -> float:
    """The paper's normalised return in ``suite``, with its constants: 0 for a random policy, 1 for the stated
    maximum. ValueError, naming the command that measures it, if the suite's random return is not measured."""
    if suite.random_return is None:
        task = f" --task {suite.task}" if suite.task else ""
        where = f" for task {suite.task}" if suite.task else ""
        raise ValueError(f"suite {suite.family}:{suite.name} has no measured random return{where} yet; run "
                         f"`pvm-mbrl envs normalise {suite.family}{task}`")
    return float(normalised_return(episode_return, suite.random_return, suite.max_return))


def suite_set_normalised_score(suite_set: SuiteSet, name: str, mean_returns: Mapping[str, float]) -> float:
    """Normalised return of a suite, or the average over a group's suites (as the paper reports them), from
    the mean return of each suite."""
    members = suite_set.members(name)
    missing = [m for m in members if m not in mean_returns]
    if missing:
        raise ValueError(f"{suite_set.family}:{name} needs mean returns for {', '.join(missing)}")
    return float(np.mean([suite_normalised_return(suite_set.suites[m], mean_returns[m]) for m in members]))

def relative_drop(id_normalised: ArrayLike, ood_normalised: ArrayLike) -> float:
    """Relative drop from ID to OOD on normalised returns: ``(mean(G_norm_ID) - mean(G_norm_OOD)) / mean(G_norm_ID)``.

    Each argument is one normalised return or the per-seed (or per-episode) normalised returns of a setting;
    their means are compared. 0.28 is the paper's "relative drop of 28%"; above 1 means the OOD return is worse
    than a random policy (the paper's "worse than a random agent, a relative drop of 106%"), which on the
    normalised scale is exactly ``mean(G_norm_OOD) < 0``. Undefined (ValueError) unless the ID mean is above 0,
    i.e. the agent beats the random policy in distribution.
    """
    id_mean = float(np.mean(finite_values(np.atleast_1d(id_normalised), "id_normalised")))
    ood_mean = float(np.mean(finite_values(np.atleast_1d(ood_normalised), "ood_normalised")))
    if id_mean <= 0:
        raise ValueError(f"relative drop is undefined for a mean ID normalised return <= 0 (got {id_mean:g})")
    return (id_mean - ood_mean) / id_mean


def smooth_curve(steps: ArrayLike, values: ArrayLike, window: float) -> np.ndarray:
    """Trailing moving average over a window of ``window`` env steps.

    ``smoothed[i] = mean(values[j] for j with steps[i] - window < steps[j] <= steps[i])``: each point averages the
    points of the last ``window`` env steps up to and including itself (so no later data leaks into a step).
    """
    steps_array, values_array = as_curve(steps, values)
    if not (np.isfinite(window) and window > 0):
        raise ValueError(f"window must be a positive number of env steps, got {window}")
    first = np.searchsorted(steps_array, steps_array - window, side="right")
    cumulative = np.concatenate([[0.0], np.cumsum(values_array)])
    last = np.arange(1, steps_array.size + 1)
    return (cumulative[last] - cumulative[first]) / (last - first)


def steps_to_threshold(steps: ArrayLike, values: ArrayLike, window: float = 20_000, fraction: float = 0.9) -> float:
    """First env step at which the smoothed curve reaches ``fraction`` of its own maximum (Table III).

    ``s = smooth_curve(steps, values, window)``; returns ``min{steps[i] : s[i] >= fraction * max(s)}``. The paper
    uses ``window`` = 20K steps and ``fraction`` = 0.9. The maximum must be above 0 (ValueError otherwise: a
    fraction of a non-positive maximum is not below it); normalised returns, 0 for a random policy, satisfy this
    for any run that learned something.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    smoothed = smooth_curve(steps, values, window)
    peak = smoothed.max()
    if peak <= 0:
        raise ValueError(f"steps-to-threshold needs a smoothed maximum above 0, got {peak:g}")
    first = int(np.argmax(smoothed >= fraction * peak))
    return float(np.asarray(steps, dtype=float)[first])


@dataclass(frozen=True)
class ThresholdSummary:
    """Steps-to-threshold of one model over its seeds: median and range, as in Table III."""

    median: float
    low: float
    high: float
    per_seed: dict[int, float]


def summarise_steps_to_threshold(curves_by_model: Mapping[str, Mapping[int, Curve]], window: float = 20_000,
                                 fraction: float = 0.9) -> dict[str, ThresholdSummary]:
    """Per model, ``steps_to_threshold`` of each seed's curve and their median and (min, max) over seeds.

    ``curves_by_model`` maps model name -> {seed: (steps, values)}.
    """
    if not curves_by_model:
        raise ValueError("curves_by_model is empty")
    summaries = {}
    for model, curves in curves_by_model.items():
        if not curves:
            raise ValueError(f"model {model!r} has no curves")
        per_seed = {}
        for seed, (steps, values) in curves.items():
            try:
                per_seed[seed] = steps_to_threshold(steps, values, window, fraction)
            except ValueError as error:
                raise ValueError(f"model {model!r}, seed {seed}: {error}") from error
        crossings = np.array(list(per_seed.values()))
        summaries[model] = ThresholdSummary(float(np.median(crossings)), float(crossings.min()),
                                            float(crossings.max()), per_seed)
    return summaries
