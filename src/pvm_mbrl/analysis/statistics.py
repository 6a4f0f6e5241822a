"""Statistics over seeds and between models: the paper's permutation test between learning curves
(Jones et al. 2025, sections IV-D and V-A), mean and standard error (its error bars), and the interquartile mean
with stratified-bootstrap confidence intervals of Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice" (the ``rliable`` package's ``aggregate_iqm`` and ``get_interval_estimates`` with its default percentile
method, re-implemented here with numpy/scipy: rliable 1.2.0 pulls arch, statsmodels, seaborn and pandas, and the
arch it resolves fails to import beside pandas 3); and, for the returns per evaluation setting, a permutation
test between two models' per-seed scores and the relative drop from ID with a paired bootstrap interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import trim_mean

from pvm_mbrl.analysis.measures import Curve, as_curve, finite_values, relative_drop

PERMUTATION_BATCH_ELEMENTS = 1 << 20
"""Permuted mean curves held in memory at once (permutations x grid points) by ``permutation_test``."""


def interpolate_to_common_grid(curves: Sequence[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """Curves on different step grids, linearly interpolated onto one grid.

    The grid is the sorted union of all curves' steps inside the range every curve covers,
    ``[max_k steps_k[0], min_k steps_k[-1]]`` (no extrapolation). Returns ``(grid, values)`` with ``values`` of shape
    ``(len(curves), len(grid))``.
    """
    if not curves:
        raise ValueError("no curves given")
    checked = [as_curve(steps, values) for steps, values in curves]
    start = max(steps[0] for steps, _ in checked)
    stop = min(steps[-1] for steps, _ in checked)
    if stop <= start:
        raise ValueError(f"curves share no step range of positive length: latest first step {start:g}, "
                         f"earliest last step {stop:g}")
    grid = np.unique(np.concatenate([steps for steps, _ in checked]))
    grid = grid[(grid >= start) & (grid <= stop)]
    return grid, np.stack([np.interp(grid, steps, values) for steps, values in checked])


def trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    """Weights ``w`` with ``w @ f(grid)`` the trapezoid-rule integral of ``f`` over ``grid`` (at least 2 points)."""
    gaps = np.diff(grid)
    return np.concatenate([[0.0], gaps]) / 2 + np.concatenate([gaps, [0.0]]) / 2


@dataclass(frozen=True)
class PermutationTestResult:
    """A permutation test between two models: the observed area between their mean curves and its p-value."""

    statistic: float
    p_value: float
    num_permutations: int


def random_splits(size: int, size_a: int, num_splits: int, seed: int) -> np.ndarray:
    """``num_splits`` random relabellings of ``size`` pooled samples: each row holds the indices of group a (``size_a``
    of them), from a ``numpy`` generator seeded with ``seed``."""
    orders = np.random.default_rng(seed).permuted(np.tile(np.arange(size), (num_splits, 1)), axis=1)
    return orders[:, :size_a]


def label_splits(size: int, size_a: int, num_permutations: int, seed: int) -> tuple[np.ndarray, bool]:
    """The relabellings a two-group permutation test evaluates, as rows of group-a indices, and whether they are
    all of them: every one of the ``C(size, size_a)`` splits when they number at most ``num_permutations`` (an
    exact test), else ``num_permutations`` random ones (``random_splits``)."""
    if num_permutations < 1:
        raise ValueError(f"num_permutations must be >= 1, got {num_permutations}")
    if math.comb(size, size_a) <= num_permutations:
        return np.array(list(itertools.combinations(range(size), size_a))), True
    return random_splits(size, size_a, num_permutations, seed), False


def split_p_value(observed: float, permuted: np.ndarray, exact: bool, tolerance: float) -> PermutationTestResult:
    """Two-sided p of ``observed`` among the statistics of the splits of ``label_splits``: exact, the fraction of
    splits (the observed one included) with ``T_k >= T``; random, ``(1 + #{k : T_k >= T}) / (N + 1)``. ``T_k``
    within ``tolerance`` below ``T`` count: the observed split (and, with equal group sizes, its mirror) must,
    despite rounding."""
    exceed = int(np.count_nonzero(permuted >= observed - tolerance))
    if exact:
        return PermutationTestResult(float(observed), exceed / permuted.size, permuted.size)
    return PermutationTestResult(float(observed), (1 + exceed) / (permuted.size + 1), permuted.size)


def permutation_test(curves_a: Sequence[Curve], curves_b: Sequence[Curve], num_permutations: int = 10_000,
                     seed: int = 0) -> PermutationTestResult:
    """Permutation test between two models' learning curves (one per seed), the paper's test with N = 10K.

    Statistic: the area between the two models' mean curves, ``T = integral |mean_a(s) - mean_b(s)| ds`` (trapezoid
    rule on the common grid of ``interpolate_to_common_grid``); pass normalised returns for the paper's "area
    between the normalized mean learning curve from each model". Null hypothesis: all curves come from one
    distribution, so the model labels are exchangeable. A relabelling splits the pooled curves into groups of the
    original sizes and gives ``T_k``. The paper draws N = 10K random ones; where the ``C(n_a + n_b, n_a)`` splits
    number at most ``num_permutations`` every one is evaluated instead (exact: p = the fraction with
    ``T_k >= T``, the observed split included), else ``num_permutations`` random ones from a ``numpy`` generator
    seeded with ``seed`` give ``p = (1 + #{k : T_k >= T}) / (num_permutations + 1)`` (``split_p_value``).
    Three seeds against three have 20 splits, so p >= 0.1.
    """
    if not curves_a or not curves_b:
        raise ValueError(f"each model needs at least one curve, got {len(curves_a)} and {len(curves_b)}")
    chosen, exact = label_splits(len(curves_a) + len(curves_b), len(curves_a), num_permutations, seed)
    grid, pooled = interpolate_to_common_grid([*curves_a, *curves_b])
    size_a, size_b = len(curves_a), len(curves_b)
    weights, total = trapezoid_weights(grid), pooled.sum(axis=0)

    def areas(membership_a: np.ndarray) -> np.ndarray:
        sums_a = membership_a @ pooled
        return np.abs(sums_a / size_a - (total - sums_a) / size_b) @ weights

    observed = float(areas(np.repeat([1.0, 0.0], [size_a, size_b])[None])[0])
    membership = np.zeros((len(chosen), size_a + size_b))
    np.put_along_axis(membership, chosen, 1.0, axis=1)
    batch = max(1, PERMUTATION_BATCH_ELEMENTS // grid.size)
    permuted = np.concatenate([areas(membership[i:i + batch]) for i in range(0, len(chosen), batch)])
    return split_p_value(observed, permuted, exact, 1e-9 * float(np.abs(pooled).max()) * (grid[-1] - grid[0]))


def pairwise_permutation_tests(curves_by_model: Mapping[str, Mapping[int, Curve]], models: Sequence[str] | None = None,
                               num_permutations: int = 10_000, seed: int = 0,
                               ) -> dict[tuple[str, str], PermutationTestResult]:
    """``permutation_test`` between every pair of ``models`` (default: all of ``curves_by_model``).

    ``curves_by_model`` maps model name -> {seed: (steps, values)}. Every pair uses the same ``seed``, so a pair's
    result does not depend on which other models are compared. Returns ``{(model_a, model_b): result}`` for the
    pairs in the order of ``models``. No correction for multiple comparisons is applied (the paper applies none).
    """
    names = list(curves_by_model) if models is None else list(models)
    unknown = [name for name in names if name not in curves_by_model]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {sorted(curves_by_model)}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"model(s) listed more than once: {repeated}")
    if len(names) < 2:
        raise ValueError(f"need at least two models to compare, got {names}")
    return {(a, b): permutation_test(list(curves_by_model[a].values()), list(curves_by_model[b].values()),
                                     num_permutations, seed)
            for a, b in itertools.combinations(names, 2)}


def iqm(scores: ArrayLike, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% of ``scores`` (a 25% trimmed mean, ``scipy.stats.trim_mean``).

    ``floor(0.25 n)`` values are cut from each end, as rliable's ``aggregate_iqm`` does; with ``axis=None`` (the
    default) over all entries (runs x tasks), else along ``axis``. With fewer than 4 values nothing is cut.
    """
    array = np.asarray(scores, dtype=float)
    if array.size == 0:
        raise ValueError("scores is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"scores has non-finite entries: {array[~np.isfinite(array)][:5].tolist()}")
    result = trim_mean(array, proportiontocut=0.25, axis=axis)
    return float(result) if np.ndim(result) == 0 else result


@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate and its confidence interval."""

    estimate: float
    low: float
    high: float


def stratified_bootstrap_ci(scores: ArrayLike, statistic: Callable[..., np.ndarray | float] = iqm,
                            num_resamples: int = 50_000, confidence: float = 0.95, seed: int = 0,
                            ) -> ConfidenceInterval:
    """Stratified-bootstrap percentile confidence interval of an aggregate over runs, as rliable computes it.

    ``scores`` has shape ``(runs,)`` or ``(runs, tasks)`` (e.g. seeds x evaluation settings). Each of
    ``num_resamples`` resamples draws ``runs`` runs with replacement independently within every task (the
    strata), and ``statistic(resamples, axis=1)`` aggregates each flattened resample (``iqm``, ``np.mean`` and
    ``np.median`` take that form). The interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    percentiles of the resampled statistics; the estimate is the statistic of ``scores`` itself. rliable's
    defaults: 50,000 resamples, 95%. Resampling uses a ``numpy`` generator seeded with ``seed``.
    """
    array = np.asarray(scores, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"scores must have shape (runs,) or (runs, tasks), got {array.shape}")
    runs, tasks = array.shape
    if runs < 2 or tasks < 1:
        raise ValueError(f"a bootstrap over runs needs at least 2 runs and 1 task, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"scores has non-finite entries: {array[~np.isfinite(array)][:5].tolist()}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")
    rng = np.random.default_rng(seed)
    run_indices = rng.integers(0, runs, size=(num_resamples, runs, tasks))
    resamples = array[run_indices, np.arange(tasks)].reshape(num_resamples, runs * tasks)
    low, high = np.percentile(statistic(resamples, axis=1), [50 * (1 - confidence), 50 * (1 + confidence)])
    return ConfidenceInterval(float(statistic(array.ravel(), axis=0)), float(low), float(high))


def bootstrap_interval_is_seed_range(seeds: int, confidence: float = 0.95) -> bool:
    """Whether a percentile-bootstrap interval over ``seeds`` seeds is just their range, lowest to highest seed.

    A resample of one seed only has probability ``seeds ** -seeds``; where that exceeds each tail's
    ``(1 - confidence) / 2`` (2 and 3 seeds at 95%: 25% and 3.7%), the percentiles land on the extreme seeds. That
    holds for the mean, the IQM (which trims nothing below 4 values) and the relative drop (a weighted mean of the
    seeds' drops); such an interval covers the true value less often than ``confidence``. False says only that
    this bound does not apply: with 4 seeds the mean's interval lies inside the range, the IQM's need not.
    """
    return seeds >= 1 and seeds ** -seeds > (1 - confidence) / 2


def mean_and_standard_error(values: ArrayLike) -> tuple[float, float]:
    """Mean and standard error over seeds (the paper's error bars): ``SE = std(values, ddof=1) / sqrt(n)``."""
    array = finite_values(values, "values")
    if array.size < 2:
        raise ValueError(f"a standard error needs at least 2 values, got {array.size}")
    return float(array.mean()), float(array.std(ddof=1) / np.sqrt(array.size))


def mean_difference_permutation_test(values_a: ArrayLike, values_b: ArrayLike, num_permutations: int = 10_000,
                                     seed: int = 0) -> PermutationTestResult:
    """Two-sided permutation test between two models' scores (one per seed), e.g. their hard-OOD returns.

    Statistic: ``T = |mean(a) - mean(b)|``. Null hypothesis: the model labels are exchangeable. When the
    ``C(n_a + n_b, n_a)`` splits of the pooled scores into groups of the original sizes number at most
    ``num_permutations``, every split is evaluated (an exact test; ``p`` = the fraction of splits, the observed one
    included, with ``T_k >= T``; ``num_permutations`` in the result is then the number of splits); otherwise
    ``num_permutations`` random splits from a ``numpy`` generator seeded with ``seed`` give
    ``p = (1 + #{k : T_k >= T}) / (num_permutations + 1)``. Three seeds against three have 20 splits, and the
    observed split and its mirror always count: p >= 0.1.
    """
    a = finite_values(np.atleast_1d(values_a), "values_a")
    b = finite_values(np.atleast_1d(values_b), "values_b")
    pooled = np.concatenate([a, b])
    chosen, exact = label_splits(pooled.size, a.size, num_permutations, seed)
    sums_a = pooled[chosen].sum(axis=1)
    permuted = np.abs(sums_a / a.size - (pooled.sum() - sums_a) / b.size)
    return split_p_value(abs(a.mean() - b.mean()), permuted, exact, 1e-12 * max(1.0, float(np.abs(pooled).max())))


def paired_values(id_scores: ArrayLike, ood_scores: ArrayLike, id_name: str, ood_name: str,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One model's finite ID and OOD scores as arrays that pair up seed by seed (ValueError naming them if not)."""
    id_array = finite_values(np.atleast_1d(id_scores), id_name)
    ood_array = finite_values(np.atleast_1d(ood_scores), ood_name)
    if id_array.shape != ood_array.shape:
        raise ValueError(f"{id_name} and {ood_name} must pair up seed by seed, got {id_array.size} and "
                         f"{ood_array.size} scores")
    return id_array, ood_array


def relative_drop_permutation_test(id_a: ArrayLike, ood_a: ArrayLike, id_b: ArrayLike, ood_b: ArrayLike,
                                   num_permutations: int = 10_000, seed: int = 0) -> PermutationTestResult:
    """Two-sided permutation test between two models' relative drops from ID to OOD, the drop the report shows.

    Each model's drop is ``relative_drop`` of its seeds' mean ID and mean OOD scores (a ratio of means);
    ``T = |drop_a - drop_b|``. Under the null the model labels of the seeds are exchangeable: a split relabels
    whole seeds, each keeping its ID and OOD scores together. Splits and p as ``mean_difference_permutation_test``.
    ValueError where a split's mean ID score is not above 0 (its drop is undefined: a seed below random in ID).
    """
    id_a_array, ood_a_array = paired_values(id_a, ood_a, "id_a", "ood_a")
    id_b_array, ood_b_array = paired_values(id_b, ood_b, "id_b", "ood_b")
    ids, oods = np.concatenate([id_a_array, id_b_array]), np.concatenate([ood_a_array, ood_b_array])
    size_a, size_b = id_a_array.size, id_b_array.size
    chosen, exact = label_splits(ids.size, size_a, num_permutations, seed)
    id_sums_a, ood_sums_a = ids[chosen].sum(axis=1), oods[chosen].sum(axis=1)
    id_means_a, id_means_b = id_sums_a / size_a, (ids.sum() - id_sums_a) / size_b
    if (id_means_a <= 0).any() or (id_means_b <= 0).any():
        raise ValueError("relative drop is undefined for a relabelling whose mean ID normalised return is <= 0 (a "
                         f"seed below random in ID: {min(ids.tolist()):g})")
    drops_a = 1 - ood_sums_a / size_a / id_means_a
    drops_b = 1 - (oods.sum() - ood_sums_a) / size_b / id_means_b
    observed = abs(relative_drop(id_a_array, ood_a_array) - relative_drop(id_b_array, ood_b_array))
    return split_p_value(observed, np.abs(drops_a - drops_b), exact, 1e-12)


def relative_drop_ci(id_scores: ArrayLike, ood_scores: ArrayLike, num_resamples: int = 50_000,
                     confidence: float = 0.95, seed: int = 0) -> ConfidenceInterval:
    """Relative drop from ID to OOD, ``(mean(id) - mean(ood)) / mean(id)``, with a paired bootstrap percentile CI.

    ``id_scores[i]`` and ``ood_scores[i]`` are one seed's normalised returns in the two settings (the same agent),
    so each of ``num_resamples`` resamples draws seeds with replacement and keeps each seed's pair together. The
    drop is undefined when the mean ID score is not above 0 (the agent does not beat the random policy in
    distribution): ValueError for the scores themselves, and also when any resample's ID mean is not above 0 (the
    interval would be unbounded).
    """
    id_array, ood_array = paired_values(id_scores, ood_scores, "id_scores", "ood_scores")
    if id_array.size < 2:
        raise ValueError(f"a bootstrap over seeds needs at least 2 seeds, got {id_array.size}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")
    estimate = relative_drop(id_array, ood_array)
    indices = np.random.default_rng(seed).integers(0, id_array.size, size=(num_resamples, id_array.size))
    id_means, ood_means = id_array[indices].mean(axis=1), ood_array[indices].mean(axis=1)
    undefined = np.count_nonzero(id_means <= 0)
    if undefined:
        raise ValueError(f"relative drop interval is unbounded: the mean ID normalised return is <= 0 in "
                         f"{undefined / num_resamples:.1%} of the bootstrap resamples (a seed below random in ID)")
    low, high = np.percentile((id_means - ood_means) / id_means, [50 * (1 - confidence), 50 * (1 + confidence)])
    return ConfidenceInterval(estimate, float(low), float(high))
