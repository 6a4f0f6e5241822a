import numpy as np
import pytest

from pvm_mbrl.analysis.statistics import (
    bootstrap_interval_is_seed_range,
    interpolate_to_common_grid,
    iqm,
    mean_and_standard_error,
    mean_difference_permutation_test,
    pairwise_permutation_tests,
    permutation_test,
    random_splits,
    relative_drop_ci,
    relative_drop_permutation_test,
    stratified_bootstrap_ci,
)

STEPS = np.arange(0, 101, 10)


def constant_curves(levels: list[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(STEPS, np.full(STEPS.shape, level)) for level in levels]


def noisy_curves(count: int, offset: float, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(STEPS, STEPS / 100 + offset + 0.05 * rng.standard_normal(STEPS.shape)) for _ in range(count)]


def test_interpolate_to_common_grid_hand_values():
    grid, values = interpolate_to_common_grid([([0, 10, 20], [0.0, 1.0, 2.0]), ([5, 15, 25], [10.0, 20.0, 30.0])])
    np.testing.assert_array_equal(grid, [5, 10, 15, 20])  # union of steps inside the shared range [5, 20]
    np.testing.assert_allclose(values, [[0.5, 1.0, 1.5, 2.0], [10.0, 15.0, 20.0, 25.0]])


def test_interpolate_to_common_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="no curves given"):
        interpolate_to_common_grid([])
    with pytest.raises(ValueError, match="latest first step 20, earliest last step 10"):
        interpolate_to_common_grid([([0, 10], [0.0, 1.0]), ([20, 30], [0.0, 1.0])])
    with pytest.raises(ValueError, match="2 steps, 3 values"):
        interpolate_to_common_grid([([0, 10], [0.0, 1.0, 2.0])])


def test_random_splits_draw_every_split_of_the_pool_uniformly():
    splits = random_splits(4, 2, 6_000, seed=0)
    assert splits.shape == (6_000, 2)
    pairs = [tuple(sorted(row)) for row in splits.tolist()]
    counts = {pair: pairs.count(pair) for pair in set(pairs)}
    assert sorted(counts) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]  # the C(4, 2) = 6 splits, each ~1/6
    assert all(abs(count - 1_000) < 150 for count in counts.values()), counts
    np.testing.assert_array_equal(splits, random_splits(4, 2, 6_000, seed=0))


def test_permutation_statistic_is_the_area_between_mean_curves():
    # means 1.0 and 0.0 over 100 steps, on different grids: area 100
    result = permutation_test([([0, 50, 100], [1.0, 1.0, 1.0])], [([0, 100], [0.0, 0.0])], num_permutations=10)
    assert result.statistic == pytest.approx(100.0)
    # a ramp 0 -> 1 against the mean of 0.4 and 0.6: two triangles of area 0.5 * 50 * 0.5 = 12.5 each
    ramp = (STEPS, STEPS / 100)
    result = permutation_test([ramp], constant_curves([0.4, 0.6]), num_permutations=10)
    assert result.statistic == pytest.approx(25.0)


def test_identical_sets_of_curves_give_p_one():
    curves = noisy_curves(3, offset=0.0, seed=1)
    result = permutation_test(curves, list(curves), num_permutations=2_000)
    assert result.statistic == pytest.approx(0.0, abs=1e-9)
    assert result.p_value == 1.0  # every relabelling is at least as far apart as identical means


def test_separated_three_against_three_reaches_the_smallest_possible_p():
    # 3 vs 3 seeds: C(6, 3) = 20 splits, all evaluated; only the true split and its mirror reach the area: p = 2/20
    result = permutation_test(constant_curves([1.0, 1.1, 1.2]), constant_curves([0.0, 0.1, 0.2]))
    assert (result.statistic, result.p_value, result.num_permutations) == pytest.approx((100.0, 0.1, 20))
    # with fewer permutations than splits, random ones: p = (1 + #{T_k >= T}) / (N + 1), near 0.1
    sampled = permutation_test(constant_curves([1.0, 1.1, 1.2]), constant_curves([0.0, 0.1, 0.2]), 19)
    assert sampled.num_permutations == 19 and sampled.p_value * 20 == pytest.approx(round(sampled.p_value * 20))


def test_clearly_separated_curves_give_a_small_p():
    # 8 vs 8 seeds: the smallest possible p is 2 / C(16, 8) = 1.6e-4
    result = permutation_test(noisy_curves(8, 0.5, seed=2), noisy_curves(8, 0.0, seed=3), num_permutations=2_000)
    assert result.p_value < 0.005
    # p = (1 + #{T_k >= T}) / (N + 1): never 0, a whole number of 1 / 2001 steps
    assert result.p_value >= 1 / 2_001 and (result.p_value * 2_001) == pytest.approx(round(result.p_value * 2_001))
    same = permutation_test(noisy_curves(8, 0.0, seed=4), noisy_curves(8, 0.0, seed=5), num_permutations=2_000)
    assert same.p_value > 0.05


def test_permutation_test_is_reproducible_from_its_seed():
    curves_a, curves_b = noisy_curves(6, 0.05, seed=6), noisy_curves(6, 0.0, seed=7)  # C(12, 6) = 924 splits
    first = permutation_test(curves_a, curves_b, num_permutations=500, seed=11)
    assert permutation_test(curves_a, curves_b, num_permutations=500, seed=11) == first
    other_seeds = {permutation_test(curves_a, curves_b, num_permutations=500, seed=seed).p_value
                   for seed in (12, 13, 14)}
    assert other_seeds != {first.p_value}  # Monte Carlo p-values move with the seed


def test_permutation_test_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one curve, got 0 and 2"):
        permutation_test([], constant_curves([0.0, 1.0]))
    with pytest.raises(ValueError, match="num_permutations must be >= 1, got 0"):
        permutation_test(constant_curves([1.0]), constant_curves([0.0]), num_permutations=0)


def test_pairwise_permutation_tests():
    high = dict(enumerate(constant_curves([1.0, 1.1, 1.2])))
    curves_by_model = {"cnn": dict(enumerate(constant_curves([0.0, 0.1, 0.2]))), "dinov2": high, "clip": high}
    results = pairwise_permutation_tests(curves_by_model, num_permutations=2_000, seed=3)
    assert list(results) == [("cnn", "dinov2"), ("cnn", "clip"), ("dinov2", "clip")]
    assert results[("dinov2", "clip")].p_value == 1.0
    assert results[("cnn", "dinov2")].p_value == pytest.approx(0.1, abs=0.03)
    # each pair is the plain two-model test with the same seed, whatever else is compared
    alone = permutation_test(list(curves_by_model["cnn"].values()), list(high.values()), num_permutations=2_000,
                             seed=3)
    assert results[("cnn", "clip")] == alone
    subset = pairwise_permutation_tests(curves_by_model, models=["clip", "cnn"], num_permutations=2_000, seed=3)
    assert list(subset) == [("clip", "cnn")]


def test_pairwise_permutation_tests_rejects_bad_models():
    curves_by_model = {"cnn": {0: (STEPS, STEPS / 100)}, "clip": {0: (STEPS, STEPS / 50)}}
    with pytest.raises(ValueError, match=r"unknown model\(s\) \['vit'\]; known: \['clip', 'cnn'\]"):
        pairwise_permutation_tests(curves_by_model, models=["cnn", "vit"])
    with pytest.raises(ValueError, match=r"listed more than once: \['cnn'\]"):
        pairwise_permutation_tests(curves_by_model, models=["cnn", "cnn"])
    with pytest.raises(ValueError, match="at least two models"):
        pairwise_permutation_tests(curves_by_model, models=["cnn"])


def test_iqm_hand_values():
    assert iqm([100.0, 3.0, -100.0, 5.0, 0.0, 2.0, 4.0, 1.0]) == pytest.approx(2.5)  # mean of 1, 2, 3, 4
    assert iqm(np.arange(1.0, 9.0).reshape(2, 4)) == pytest.approx(4.5)  # runs x tasks, flattened: 3..6
    np.testing.assert_allclose(iqm([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]], axis=1), [2.5, 25.0])
    assert iqm([1.0, 2.0, 9.0]) == pytest.approx(4.0)  # floor(0.75) = 0 cut: the plain mean


@pytest.mark.parametrize("scores, match", [([], "scores is empty"), ([1.0, np.inf], "non-finite")])
def test_iqm_rejects_bad_input(scores, match):
    with pytest.raises(ValueError, match=match):
        iqm(scores)


def test_stratified_bootstrap_hand_values():
    ci = stratified_bootstrap_ci([0.0, 1.0], statistic=np.mean, num_resamples=20_000)
    # resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4
    assert (ci.estimate, ci.low, ci.high) == (0.5, 0.0, 1.0)
    narrow = stratified_bootstrap_ci([0.0, 1.0], statistic=np.mean, num_resamples=20_000, confidence=0.4)
    assert (narrow.low, narrow.high) == (0.5, 0.5)  # the 30th and 70th percentiles both fall on 0.5
    constant = stratified_bootstrap_ci(np.full((3, 2), 0.7), num_resamples=100)
    assert (constant.estimate, constant.low, constant.high) == pytest.approx((0.7, 0.7, 0.7))


def test_stratified_bootstrap_resamples_runs_within_each_task():
    # strata: task 0 is always 0 and task 1 always 10, so every stratified resample has mean exactly 5
    # (resampling the pooled six scores would not)
    ci = stratified_bootstrap_ci([[0.0, 10.0]] * 3, statistic=np.mean, num_resamples=2_000)
    assert (ci.estimate, ci.low, ci.high) == (5.0, 5.0, 5.0)
    # runs are drawn independently per task (rliable): the mean of 4 fair coin flips has 10th/90th percentiles
    # 0.25 / 0.75; drawing whole runs (rows) would give 0 / 1
    ci = stratified_bootstrap_ci([[0.0, 0.0], [1.0, 1.0]], statistic=np.mean, num_resamples=20_000, confidence=0.8)
    assert (ci.low, ci.high) == (0.25, 0.75)


def test_stratified_bootstrap_defaults_to_iqm_and_is_reproducible():
    scores = np.array([[0.1, 0.9], [0.4, 0.5], [0.3, 0.7], [0.2, 0.8]])
    ci = stratified_bootstrap_ci(scores, num_resamples=1_000, seed=5)
    assert ci.estimate == pytest.approx(0.475)  # IQM of the 8 scores: mean of 0.3, 0.4, 0.5, 0.7
    assert ci.low <= ci.estimate <= ci.high
    scores = np.random.default_rng(0).standard_normal((6, 3))
    ci = stratified_bootstrap_ci(scores, num_resamples=1_000, seed=5)
    assert stratified_bootstrap_ci(scores, num_resamples=1_000, seed=5) == ci
    assert stratified_bootstrap_ci(scores, num_resamples=1_000, seed=6) != ci


@pytest.mark.parametrize("scores, kwargs, match", [
    ([1.0], {}, r"at least 2 runs and 1 task, got shape \(1, 1\)"),
    (np.zeros((2, 2, 2)), {}, r"shape \(runs,\) or \(runs, tasks\), got \(2, 2, 2\)"),
    ([1.0, np.nan], {}, "non-finite"),
    ([1.0, 2.0], {"confidence": 1.0}, r"confidence must be in \(0, 1\), got 1.0"),
    ([1.0, 2.0], {"num_resamples": 0}, "num_resamples must be >= 1, got 0"),
])
def test_stratified_bootstrap_rejects_bad_input(scores, kwargs, match):
    with pytest.raises(ValueError, match=match):
        stratified_bootstrap_ci(scores, **kwargs)


def test_mean_and_standard_error_hand_values():
    mean, standard_error = mean_and_standard_error([1.0, 2.0, 3.0])
    assert mean == 2.0 and standard_error == pytest.approx(1 / np.sqrt(3))  # sample sd 1
    mean, standard_error = mean_and_standard_error([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert mean == 5.0 and standard_error == pytest.approx(np.sqrt(4 / 7))  # sd sqrt(32 / 7), n 8


@pytest.mark.parametrize("values, match", [([], "values is empty"), ([1.0], "at least 2 values, got 1")])
def test_mean_and_standard_error_rejects_bad_input(values, match):
    with pytest.raises(ValueError, match=match):
        mean_and_standard_error(values)


def test_mean_difference_permutation_test_is_exact_over_few_splits():
    separated = mean_difference_permutation_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    # |2 - 5| = 3; of the 20 splits only the observed one and its mirror reach 3.
    assert (separated.statistic, separated.p_value, separated.num_permutations) == pytest.approx((3.0, 0.1, 20))
    # Splits of {1, 2 | 3}: {1,2}|3 -> 1.5, {1,3}|2 -> 0, {2,3}|1 -> 1.5.
    uneven = mean_difference_permutation_test([1.0, 2.0], [3.0])
    assert (uneven.statistic, uneven.p_value, uneven.num_permutations) == pytest.approx((1.5, 2 / 3, 3))
    assert mean_difference_permutation_test([0.0, 1.0], [1.0, 0.0]).p_value == 1.0


def test_mean_difference_permutation_test_samples_splits_when_they_are_many():
    a, b = np.arange(10.0), np.arange(10.0) + 100  # C(20, 10) = 184,756 splits
    result = mean_difference_permutation_test(a, b, num_permutations=999, seed=1)
    assert result.num_permutations == 999 and result.statistic == pytest.approx(100.0)
    assert result.p_value <= 3 / 1000  # (1 + #{T_k >= T}) / 1000: only the observed split or its mirror reach T
    assert mean_difference_permutation_test(a, a + 0.1, num_permutations=999).p_value > 0.5
    assert result == mean_difference_permutation_test(a, b, num_permutations=999, seed=1)


@pytest.mark.parametrize("a, b, kwargs, match", [
    ([], [1.0], {}, "values_a is empty"),
    ([1.0], [np.nan], {}, "values_b has non-finite"),
    ([1.0], [2.0], {"num_permutations": 0}, "num_permutations must be >= 1, got 0"),
])
def test_mean_difference_permutation_test_rejects_bad_input(a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mean_difference_permutation_test(a, b, **kwargs)


def test_relative_drop_ci_hand_values():
    constant = relative_drop_ci([0.8, 0.8], [0.2, 0.2], num_resamples=100)
    assert (constant.estimate, constant.low, constant.high) == pytest.approx((0.75, 0.75, 0.75))  # (.8 - .2) / .8
    # Seeds (id, ood) = (.5, .5) and (1, 0), resampled in pairs: both first -> drop 0 (p 1/4), both second -> 1
    # (1/4), one of each -> (.75 - .25) / .75 = 2/3 (1/2); the estimate is 2/3 and the 2.5%/97.5% percentiles 0 and 1.
    paired = relative_drop_ci([0.5, 1.0], [0.5, 0.0], num_resamples=2_000)
    assert (paired.estimate, paired.low, paired.high) == pytest.approx((2 / 3, 0.0, 1.0))


@pytest.mark.parametrize("id_scores, ood_scores, match", [
    ([0.5, 0.5, 0.5], [0.1, 0.1], "must pair up seed by seed, got 3 and 2"),
    ([0.5], [0.1], "needs at least 2 seeds, got 1"),
    ([-0.1, 0.05], [0.0, 0.0], "undefined for a mean ID normalised return <= 0"),
    ([1.0, -0.5], [0.5, 0.0], "unbounded: the mean ID normalised return is <= 0 in 2"),  # both seeds 2: ~25%
])
def test_relative_drop_ci_rejects_undefined_drops(id_scores, ood_scores, match):
    with pytest.raises(ValueError, match=match):
        relative_drop_ci(id_scores, ood_scores, num_resamples=1_000)


def test_relative_drop_permutation_test_compares_ratios_of_means():
    # Seeds (id, ood): A (1, .5), (.1, 0) -> drop (.55 - .25) / .55 = 6/11; B (.6, .15) twice -> drop .75.
    # The mean of per-seed drops is .75 for both (T would be 0, p 1); the drops the report shows differ by .2045.
    # The 6 splits: {A1 A2 | B B} and its mirror give .2045; the other 4 give |.59375 - .7857| = .192: p = 2/6.
    result = relative_drop_permutation_test([1.0, 0.1], [0.5, 0.0], [0.6, 0.6], [0.15, 0.15])
    assert (result.statistic, result.p_value, result.num_permutations) == pytest.approx((0.75 - 6 / 11, 1 / 3, 6))
    assert relative_drop_permutation_test([0.5, 1.0], [0.25, 0.5], [1.0, 0.5], [0.5, 0.25]).p_value == 1.0
    many = relative_drop_permutation_test(np.ones(10), np.zeros(10), np.ones(10), np.ones(10), num_permutations=99)
    assert many.num_permutations == 99 and many.statistic == 1.0 and many.p_value <= 3 / 100  # observed or mirror


@pytest.mark.parametrize("args, match", [
    (([1.0, 0.5], [0.5], [1.0], [0.5]), "id_a and ood_a must pair up seed by seed, got 2 and 1"),
    (([1.0], [0.5], [1.0], [np.nan]), "ood_b has non-finite"),
    (([-0.2, 0.9], [0.0, 0.5], [0.1, 0.8], [0.0, 0.4]), "undefined for a relabelling"),  # {-.2, .1} has mean < 0
])
def test_relative_drop_permutation_test_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        relative_drop_permutation_test(*args)


@pytest.mark.parametrize("seeds, is_range", [(1, True), (2, True), (3, True), (4, False), (10, False), (0, False)])
def test_bootstrap_interval_is_seed_range_below_four_seeds(seeds, is_range):
    assert bootstrap_interval_is_seed_range(seeds) is is_range


def test_three_seed_bootstrap_interval_is_the_seed_range():
    interval = stratified_bootstrap_ci([0.2, 0.5, 0.9], num_resamples=20_000)
    assert (interval.estimate, interval.low, interval.high) == pytest.approx((1.6 / 3, 0.2, 0.9))
    assert bootstrap_interval_is_seed_range(3)
    wider = stratified_bootstrap_ci([0.2, 0.5, 0.6, 0.9], np.mean, num_resamples=20_000)
    assert wider.low > 0.2 and wider.high < 0.9 and not bootstrap_interval_is_seed_range(4)
