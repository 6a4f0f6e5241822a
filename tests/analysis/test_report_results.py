"""The report's numbers (analysis/report_results.py) on small runs built in memory, no files: a toy env family
with hand-picked normalisation constants, curves, scores, latents and saliency maps whose answers are computed
by hand in the comments."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pvm_mbrl.analysis import report_results
from pvm_mbrl.analysis.correlations import Correlation
from pvm_mbrl.analysis.report_options import ReportOptions
from pvm_mbrl.analysis.report_results import (
    MeanSE,
    NotApplicable,
    ScoreTable,
    Unavailable,
    attempt,
    attention_inputs,
    env_results,
    forgetting,
    hard_ood_correlations,
    latent_invariance,
    learning_curves,
    objectness_scores,
    relative_drop_table,
    reporting_settings,
    return_tests,
    returns_per_setting,
    run_scores,
    setting_latents,
    suite_episode_counts,
    world_model_losses,
)
from pvm_mbrl.analysis.study import Run, Study
from pvm_mbrl.envs.suites import Suite, SuiteSet

ENV = "toy:task"
CONSTANTS = {"id": (0.0, 2.0), "weak_a": (0.0, 20.0), "weak_b": (-10.0, 10.0), "hard": (0.0, 10.0)}  # random, max


def toy_family(normalisable: bool = True) -> SuiteSet:
    suites = {name: Suite("toy", name, "", {}, high, low if normalisable else None)
              for name, (low, high) in CONSTANTS.items()}
    return SuiteSet("toy", "", "id", suites, groups={"weak": ["weak_a", "weak_b"]})


@pytest.fixture
def toy(monkeypatch):
    """``toy:task`` has the settings id, weak (weak_a + weak_b) and hard, with ``CONSTANTS``."""
    monkeypatch.setattr(report_results, "family_suites", lambda env: toy_family())


def make_run(model: str, seed: int, metrics: dict | None = None, episodes: dict | None = None,
             analysis: dict | None = None) -> Run:
    """A run of ``ENV`` in memory; ``episodes``: {suite: returns of its episodes}."""
    table = None if episodes is None else pd.DataFrame(
        [{"suite": suite, "return": value} for suite, values in episodes.items() for value in values])
    cfg = OmegaConf.create({"env": {"name": ENV, "suite": "id"}})
    return Run(Path(f"{model}/seed{seed}"), f"{model}/seed{seed}", cfg, ENV, model, "scratch", model, seed,
               "finished", True, pd.DataFrame(metrics or {}), table, analysis)


def scores_of(rows: dict[str, dict[str, list[float]]]) -> ScoreTable:
    """{model: {setting: one score per seed}} as a normalised ``ScoreTable``."""
    frame = pd.DataFrame([{"run": f"{m}/seed{i}", "model": m, "seed": i, "setting": s, "score": v}
                          for m, settings in rows.items() for s, values in settings.items()
                          for i, v in enumerate(values)], columns=["run", "model", "seed", "setting", "score"])
    return ScoreTable(frame, True)


class Samples:
    """A sample loader over arrays held in memory: {(run path, suite): samples}; absent ones are missing files."""

    def __init__(self, samples: dict[tuple[str, str], dict[str, np.ndarray]]):
        self.samples = samples

    def __call__(self, run_dir: Path, suite: str) -> dict[str, np.ndarray]:
        if (str(run_dir), suite) not in self.samples:
            raise FileNotFoundError(f"run {run_dir} has no latent sample for suite {suite!r}")
        return self.samples[str(run_dir), suite]


# ------------------------------------------------------------------ summaries and scores
def test_mean_and_standard_error_over_seeds():
    value = MeanSE.of([1.0, 2.0, 3.0])  # std (ddof 1) = 1, / sqrt(3)
    assert (value.mean, value.n) == (2.0, 3) and value.se == pytest.approx(1 / np.sqrt(3))
    single = MeanSE.of([5.0])
    assert (single.mean, single.n) == (5.0, 1) and np.isnan(single.se)
    with pytest.raises(ValueError):
        MeanSE.of([])


def test_scores_per_setting_normalise_each_suite_and_average_a_group(toy, monkeypatch):
    assert reporting_settings(ENV) == {"id": ["id"], "weak": ["weak_a", "weak_b"], "hard": ["hard"]}
    runs = [make_run("a", 0, episodes={"id": [0.5, 1.5], "weak_a": [10.0], "weak_b": [0.0], "hard": [2.0]}),
            make_run("a", 1, episodes={"id": [1.6], "weak_a": [4.0], "hard": [0.0]}),  # weak_b missing: no weak
            make_run("b", 0)]  # not evaluated
    table = run_scores(Study(Path("toy"), runs, []), ENV)
    # id: mean 1.0 of (0, 2) -> 0.5; weak: (10 / 20 + (0 + 10) / 20) / 2 = 0.5; hard 2 / 10 = 0.2; seed 1: id 0.8
    assert table.normalised
    assert table.frame[["run", "setting", "score"]].values.tolist() == [
        ["a/seed0", "id", 0.5], ["a/seed0", "weak", 0.5], ["a/seed0", "hard", 0.2], ["a/seed1", "id", 0.8],
        ["a/seed1", "hard", 0.0]]
    assert table.by_model("id") == {"a": [0.5, 0.8]} and table.by_model("weak") == {"a": [0.5]}
    assert suite_episode_counts(runs[0]) == {"id": 2, "weak_a": 1, "weak_b": 1, "hard": 1}
    assert suite_episode_counts(runs[2]) is None

    monkeypatch.setattr(report_results, "family_suites", lambda env: toy_family(normalisable=False))
    raw = run_scores(Study(Path("toy"), runs[:1], []), ENV)  # raw mean returns; a group averages its suites
    assert not raw.normalised and raw.frame["score"].tolist() == [1.0, 5.0, 2.0]


def test_non_finite_episode_returns_leave_their_settings_out_and_are_named(toy):
    runs = [make_run("a", 0, episodes={"id": [1.0, np.nan], "weak_a": [10.0], "weak_b": [0.0], "hard": [2.0]}),
            make_run("a", 1, episodes={"id": [1.6], "hard": [np.inf]})]
    table = run_scores(Study(Path("toy"), runs, []), ENV)
    assert table.frame[["run", "setting"]].values.tolist() == [["a/seed0", "weak"], ["a/seed0", "hard"],
                                                                 ["a/seed1", "id"]]
    assert table.problems == tuple(f"{run}: non-finite episode returns in suite {suite}; the settings with it are "
                                   f"left out of this run's scores" for run, suite in [("a/seed0", "id"),
                                                                                        ("a/seed1", "hard")])
    returns = attempt(lambda: returns_per_setting(table, ENV, ["a"], OPTIONS))
    assert returns.result.summary["id"]["a"].n == 1 and returns.problems == table.problems
    only_bad = run_scores(Study(Path("toy"), [make_run("a", 0, episodes={"id": [np.nan]})], []), ENV)
    unavailable = attempt(lambda: returns_per_setting(only_bad, ENV, ["a"], OPTIONS))
    assert "evaluated with finite returns" in unavailable.error and len(unavailable.problems) == 1


def test_an_env_without_suites_is_reported_in_id_only(monkeypatch):
    monkeypatch.setattr(report_results, "family_suites", lambda env: None)
    assert reporting_settings(ENV) == {"id": ["id"]}
    table = run_scores(Study(Path("toy"), [make_run("a", 0, episodes={"id": [3.0, 5.0]})], []), ENV)
    assert not table.normalised and table.frame["score"].tolist() == [4.0]


# ------------------------------------------------------------------ curves
STEPS = [0, 10, 20, 30]
OPTIONS = ReportOptions(curve_window=1, threshold_window=1, threshold_fraction=0.9, loss_window=1,
                        permutations=3000, bootstrap=2000, umap_points=10)


def test_learning_curves_bands_thresholds_and_permutation_test(toy):
    runs = [make_run("a", 0, {"step": STEPS, "episode/return": [0.0, 1.0, 2.0, 2.0]}),  # / max 2: 0, .5, 1, 1
            make_run("a", 1, {"step": STEPS, "episode/return": [0.0, 2.0, 2.0, 2.0]}),  # 0, 1, 1, 1
            make_run("b", 0, {"step": STEPS, "episode/return": [0.0] * 4}),  # never above random: no threshold
            make_run("c", 0, {"step": [0], "episode/return": [1.0]})]  # one step: no curve
    result = learning_curves(runs, ["a", "b", "c"], ENV, OPTIONS)
    assert result.normalised and list(result.bands) == ["a", "b"]
    grid, mean, spread = result.bands["a"]  # a 1-step window leaves the curves as they are
    assert grid.tolist() == STEPS and mean.tolist() == [0, 0.75, 1, 1] and spread.tolist() == [0, 0.25, 0, 0]
    # 90% of the maximum 1 is first reached at step 20 (seed 0) and 10 (seed 1)
    threshold = result.thresholds["a"]
    assert threshold.per_seed == {0: 20.0, 1: 10.0}
    assert (threshold.median, threshold.low, threshold.high) == (15, 10, 20)
    assert list(result.thresholds) == ["a"] and len(result.problems) == 1
    assert result.problems[0].startswith("steps-to-threshold, b seed 0: ") and "maximum above 0" in result.problems[0]
    # area between a's mean (0, .75, 1, 1) and b's (0): 10 (.75 / 2 + 1.75 / 2 + 2 / 2) = 22.5; of the 3 ways to
    # split the 3 curves 2 + 1, only the observed one has an area as large, so p is about 1/3
    test = result.tests["a", "b"]
    assert list(result.tests) == [("a", "b")] and test.statistic == pytest.approx(22.5)
    assert test.p_value == pytest.approx(1 / 3, abs=0.05) and result.tests_error is None

    assert learning_curves(runs[:2], ["a"], ENV, OPTIONS).tests is None  # one model: no tests
    late = make_run("b", 0, {"step": [100, 110], "episode/return": [1.0, 1.0]})
    apart = learning_curves([*runs[:2], late], ["a", "b"], ENV, OPTIONS)
    assert apart.tests is None and "share no step range" in apart.tests_error
    with pytest.raises(ValueError, match="no run of toy:task logged 'episode/return' at 2 or more steps"):
        learning_curves(runs[3:], ["c"], ENV, OPTIONS)


def test_world_model_losses_are_banded_per_logged_loss():
    runs = [make_run("a", 0, {"step": STEPS, "loss/rec": [4.0, 3.0, 2.0, 1.0]}),
            make_run("a", 1, {"step": STEPS, "loss/rec": [6.0, 5.0, 4.0, 3.0]})]
    result = world_model_losses(runs, ENV, OPTIONS)
    assert list(result.panels) == ["reconstruction"]
    _, mean, spread = result.panels["reconstruction"]["a"]
    assert mean.tolist() == [5, 4, 3, 2] and spread.tolist() == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="logged any of loss/rec, loss/rew, loss/dyn"):
        world_model_losses([make_run("a", 0, {"step": STEPS})], ENV, OPTIONS)


# ------------------------------------------------------------------ returns, drops, correlations
def test_returns_per_setting_mean_se_and_iqm_intervals(toy):
    scores = scores_of({"a": {"hard": [0.1] * 4, "id": [0.2, 0.4, 0.6, 0.8]}, "b": {"id": [0.3]}})
    result = returns_per_setting(scores, ENV, ["a", "b", "c"], OPTIONS)
    assert result.settings == ["id", "hard"] and result.models == ["a", "b", "c"]  # env order; weak not evaluated
    a_id = result.summary["id"]["a"]  # deviations +-.1, +-.3: variance .2 / 3
    assert a_id.mean == pytest.approx(0.5) and a_id.se == pytest.approx(np.sqrt(0.2 / 3) / 2)
    assert np.isnan(result.summary["id"]["b"].se) and list(result.summary["hard"]) == ["a"]
    iqm = result.iqm["a"]["id"]  # the middle two of four: (.4 + .6) / 2
    assert iqm.estimate == pytest.approx(0.5) and 0.2 <= iqm.low <= 0.5 <= iqm.high <= 0.8
    constant = result.iqm["a"]["hard"]
    assert (constant.estimate, constant.low, constant.high) == pytest.approx((0.1, 0.1, 0.1))
    assert result.iqm["b"] == {"id": None, "hard": None} and result.iqm["c"] == {"id": None, "hard": None}
    with pytest.raises(ValueError, match="no run of toy:task has been evaluated"):
        returns_per_setting(scores_of({}), ENV, ["a"], OPTIONS)


def test_relative_drops_from_id_or_why_they_are_undefined():
    scores = scores_of({"a": {"id": [0.8, 0.8], "weak": [0.6, 0.6], "hard": [0.2, 0.2]},
                        "b": {"id": [-0.1], "hard": [0.1]}, "c": {"id": [0.5], "weak": [0.25]}})
    result = relative_drop_table(scores, ["a", "b", "c", "d"], ["id", "weak", "hard"], OPTIONS)
    assert result.settings == ["weak", "hard"]
    assert result.drops["a"] == pytest.approx({"weak": 0.25, "hard": 0.75})  # (.8 - .6) / .8, (.8 - .2) / .8
    assert "undefined for a mean ID normalised return <= 0" in result.drops["b"]
    assert result.drops["c"] == pytest.approx({"weak": 0.5})  # not evaluated in hard
    assert result.drops["d"] == "no seed evaluated in both id and weak; no seed evaluated in both id and hard"
    hard = result.intervals["a"]["hard"]  # every seed drops by .75
    assert (hard.estimate, hard.low, hard.high) == pytest.approx((0.75, 0.75, 0.75))
    assert "at least 2 seeds, got 1" in result.intervals["c"]["weak"]
    assert result.intervals["c"]["hard"] == "no seed evaluated in both id and hard"


def test_relative_drop_intervals_pair_each_seeds_scores():
    # Seed 0 drops from .5 to .5, seed 1 from 1 to 0; seed 2 has no hard score and is left out of the pairs.
    frame = pd.DataFrame([{"run": f"a/{seed}", "model": "a", "seed": seed, "setting": setting, "score": score}
                          for seed, setting, score in [(1, "id", 1.0), (0, "id", 0.5), (2, "id", 0.9),
                                                       (0, "hard", 0.5), (1, "hard", 0.0)]])
    table = relative_drop_table(ScoreTable(frame, True), ["a"], ["id", "hard"], OPTIONS)
    interval = table.intervals["a"]["hard"]
    # Pairs resampled together: drop 0 (1/4), 1 (1/4) or (.75 - .25) / .75 (1/2); unpaired, it would not be 2/3.
    assert (interval.estimate, interval.low, interval.high) == pytest.approx((2 / 3, 0.0, 1.0))
    # The drop shown is of the same seeds as its interval: not seed 2's ID too ((.8 - .25) / .8 = .6875).
    assert table.drops["a"]["hard"] == pytest.approx(2 / 3) and table.normalised


def test_return_tests_between_every_pair_of_models():
    scores = scores_of({"a": {"id": [0.8, 0.8, 0.8], "hard": [0.2, 0.4, 0.0]},
                        "b": {"id": [0.5, 0.6, 0.7], "hard": [0.5, 0.6, 0.7]},
                        "c": {"id": [-0.1]}, "d": {"id": [-0.1], "hard": [0.0]}})
    result = return_tests(scores, ["a", "b", "c", "d"], ["id", "hard"], OPTIONS)
    column = "drop id -> hard"
    assert result.columns == ["id", "hard", column] and len(result.tests) == 6 and list(result.tests)[:2] == [
        ("a", "b"), ("a", "c")]
    a_b = result.tests[("a", "b")]
    assert a_b["id"].statistic == pytest.approx(0.2) and a_b["id"].num_permutations == 20  # |.8 - .6|, exact
    assert a_b["hard"].statistic == pytest.approx(0.4) and a_b["hard"].p_value == pytest.approx(0.1)  # separated
    assert a_b[column].statistic == pytest.approx(0.75)  # a's drop (.8 - .2) / .8; b's 0
    assert a_b[column].p_value == pytest.approx(0.1)
    a_c = result.tests[("a", "c")]
    assert a_c["id"].statistic == pytest.approx(0.9) and a_c["id"].num_permutations == 4  # C(4, 3) splits
    assert a_c["hard"] == "not evaluated" and a_c[column] == "no seed evaluated in both id and hard"
    a_d = result.tests[("a", "d")]
    assert a_d["hard"].statistic == pytest.approx(0.2) and "undefined for a relabelling" in a_d[column]
    assert return_tests(scores, ["a"], ["id", "hard"], OPTIONS).tests == {}


def test_correlations_with_hard_ood_return_across_models():
    scores = scores_of({"a": {"id": [0.9], "hard": [0.1]}, "b": {"id": [0.5], "hard": [0.2]},
                        "c": {"id": [0.1], "hard": [0.2, 0.4]}})  # hard means .1, .2, .3; id .9, .5, .1
    result = hard_ood_correlations(scores, "hard", {"p": {"a": [1.0, 3.0], "b": [4.0], "c": [6.0]},  # 2, 4, 6
                                                    "q": {"a": [1.0], "b": [2.0]}})
    assert list(result.correlations) == ["p", "q", "ID performance"]
    p, id_performance = result.correlations["p"], result.correlations["ID performance"]
    assert isinstance(p, Correlation) and p.r == pytest.approx(1.0) and p.models == 3
    assert id_performance.r == pytest.approx(-1.0)
    assert result.correlations["q"] == "needs at least 3 models with a value, has 2"


# ------------------------------------------------------------------ representations
def domains(shift: float, count: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, (count, 4)), rng.normal(shift, 0.1, (count, 4))


def test_latent_invariance_accuracy_embedding_and_problems(toy, monkeypatch):
    calls = []

    def fake_umap(z_id, z_ood, seed=0):
        calls.append((len(z_id), len(z_ood), seed))
        return np.zeros((len(z_id) + len(z_ood), 2))

    monkeypatch.setattr(report_results, "umap_embedding", fake_umap)
    evaluated = {"id": [1.0], "hard": [1.0]}
    runs = [make_run("a", 0, episodes=evaluated), make_run("a", 1, episodes=evaluated),
            make_run("b", 0, episodes=evaluated), make_run("c", 0)]
    (a0_id, a0_hard), (a1_id, a1_hard) = domains(10.0), domains(10.0, seed=1)  # fully separated domains
    load = Samples({("a/seed0", "id"): {"z": a0_id}, ("a/seed0", "hard"): {"z": a0_hard},
                    ("a/seed1", "id"): {"z": a1_id}, ("a/seed1", "hard"): {"z": a1_hard},
                    ("b/seed0", "id"): {"z": a1_id}})
    result = latent_invariance(runs, ["b", "a"], ENV, "hard", OPTIONS, load)
    assert result.accuracy == {"a": [1.0, 1.0]} and result.summary == {"a": MeanSE(1.0, 0.0, 2)}
    embedding = result.embeddings["a"]  # the first seed's, subsampled to umap_points per domain
    assert list(result.embeddings) == ["a"] and calls == [(10, 10, 0)]
    assert (embedding.n_id, embedding.seed, embedding.accuracy, embedding.points.shape) == (10, 0, 1.0, (20, 2))
    assert result.problems == ("b/seed0: latent invariance: run b/seed0 has no latent sample for suite 'hard'",)

    with pytest.raises(Unavailable, match="no evaluated run has latent samples") as failure:
        latent_invariance(runs[2:], ["b"], ENV, "hard", OPTIONS, load)
    assert failure.value.problems == result.problems  # found before it gave up, kept
    outcome = attempt(lambda: latent_invariance(runs[2:], ["b"], ENV, "hard", OPTIONS, load))
    assert outcome.result is None and outcome.error.startswith("no evaluated run")
    assert outcome.problems == result.problems


def test_setting_latents_pool_a_groups_suites(toy):
    load = Samples({("a/seed0", "weak_a"): {"z": np.zeros((3, 2))}, ("a/seed0", "weak_b"): {"z": np.ones((2, 2))}})
    assert setting_latents(make_run("a", 0), ENV, "weak", load).tolist() == [[0, 0]] * 3 + [[1, 1]] * 2


def test_forgetting_before_and_after_fine_tuning():
    runs = [make_run("a", 0, analysis={"forgetting": {"before": 0.9, "after": 0.3}}),
            make_run("a", 1, analysis={"forgetting": {"before": 0.8, "after": 0.5}}),
            make_run("cnn", 0, analysis={"forgetting": None}), make_run("cnn", 1),
            make_run("c", 0, analysis={"forgetting": {"before": 0.7, "after": 0.7}})]
    result = forgetting(runs, ["cnn", "c", "a"])
    assert list(result.rows) == ["c", "a"] and result.after == {"a": [0.3, 0.5], "c": [0.7]}
    a = result.rows["a"]  # means .85 and .4, SEs .0707 / sqrt(2) = .05 and .1414 / sqrt(2) = .1
    assert (a.before.mean, a.before.se, a.after.mean, a.after.se, a.drop) == pytest.approx((0.85, 0.05, 0.4, 0.1, 0.45))
    assert result.rows["c"].drop == 0.0 and np.isnan(result.rows["c"].after.se)
    assert result.problems == ()  # fine-tuning may forget; only a frozen encoder must not
    with pytest.raises(ValueError, match="no evaluated run has a pre-trained encoder"):
        forgetting(runs[2:4], ["cnn"])


def test_a_frozen_encoder_whose_accuracy_moved_is_a_problem():
    frozen = [make_run("f", seed, analysis={"forgetting": {"before": before, "after": 0.875}})
              for seed, before in enumerate([0.875, 0.8806])]
    for run in frozen:
        run.finetune = "frozen"
    problems = forgetting(frozen, ["f"]).problems
    assert len(problems) == 1 and problems[0].startswith(
        "f/seed1: its frozen encoder's k-NN digit accuracy moved from 0.8806 to 0.875, so its weights or BatchNorm")


def saliency_frames(masks: list[np.ndarray], saliency: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {"object_mask": np.stack(masks), "saliency": np.stack(saliency).astype(float),
            "image": np.zeros((len(masks), 4, 4, 3), dtype=np.uint8)}


def square(top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((4, 4), dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_objectness_jaccard_per_run_and_problems(toy):
    evaluated = {"id": [1.0]}
    runs = [make_run(m, s, episodes=evaluated) for m, s in (("a", 0), ("a", 1), ("b", 0), ("c", 0))]
    empty = np.zeros((4, 4), dtype=bool)
    samples = {  # a/seed0: 60% of the mass of 4 equal pixels keeps 3 of the object's 4: 3/4; its 2nd frame has no
        # object and is skipped. a/seed1: all saliency on the object's only pixel: 1
        ("a/seed0", "id"): saliency_frames([square(0, 0, 2), empty], [square(0, 0, 2), np.ones((4, 4))]),
        ("a/seed1", "id"): saliency_frames([square(3, 3, 1)], [square(3, 3, 1)]),
        ("b/seed0", "id"): {"z": np.zeros((2, 2))},  # no masks recorded: skipped
        ("c/seed0", "id"): saliency_frames([empty, empty], [np.ones((4, 4))] * 2)}
    result = objectness_scores(runs, ["c", "b", "a"], Samples(samples))
    assert result.scores == {"a": [0.75, 1.0]} and result.frames == 2
    assert result.summary["a"].mean == 0.875 and result.summary["a"].se == pytest.approx(0.125)
    assert result.problems == ("c/seed0: objectness: the object is visible in none of the 2 frames",)

    without_masks = [r for r in runs if r.model == "b"]  # an env without masks: not applicable, no problem
    with pytest.raises(NotApplicable, match="no evaluated run recorded object masks"):
        objectness_scores(without_masks, ["b"], Samples(samples))
    outcome = attempt(lambda: objectness_scores(without_masks, ["b"], Samples(samples)))
    assert not outcome.applicable and outcome.problems == ()
    unscored = [r for r in runs if r.model == "c"]  # masks, but no frame with the object: a problem
    with pytest.raises(Unavailable, match="no run with object masks gave a score") as failure:
        objectness_scores(unscored, ["c"], Samples(samples))
    assert not isinstance(failure.value, NotApplicable) and attempt(
        lambda: objectness_scores(unscored, ["c"], Samples(samples))).applicable

    missing = [*runs, make_run("d", 0, episodes=evaluated)]  # d has no sample file: the section stops there
    with pytest.raises(Unavailable, match="run d/seed0 has no latent sample") as failure:
        objectness_scores(missing, ["a", "c", "d"], Samples(samples))
    assert failure.value.problems == result.problems


def test_attention_inputs_pick_a_frame_with_the_object_in_view(toy):
    evaluated = {"id": [1.0]}
    runs = [make_run("a", 0, episodes=evaluated), make_run("b", 0, episodes=evaluated),
            make_run("b", 1, episodes=evaluated), make_run("c", 0)]
    images = np.arange(3)[:, None, None, None] * np.ones((3, 4, 4, 3))  # image i is filled with i
    visible_last = saliency_frames([np.zeros((4, 4), bool)] * 2 + [square(0, 0, 1)], [np.ones((4, 4))] * 3)
    load = Samples({("a/seed0", "id"): {**visible_last, "image": images},
                    ("a/seed0", "weak_b"): {"saliency": np.ones((3, 4, 4)), "image": images},  # no masks: frame 0
                    ("b/seed0", "id"): {"image": images},  # no saliency: the next seed is used
                    ("b/seed1", "id"): {"saliency": np.ones((3, 4, 4)), "image": images},
                    ("b/seed1", "weak_b"): {"saliency": np.ones((3, 4, 4)), "image": images}})
    result = attention_inputs(runs, ["a", "b", "c"], ENV, "weak", load)  # weak's last suite: weak_b
    assert list(result.frames) == ["a", "b"]
    assert [(label, image[0, 0, 0]) for label, image, _ in result.frames["a"]] == [("id", 2.0), ("weak", 0.0)]
    with pytest.raises(ValueError, match="no evaluated run recorded frames with saliency maps"):
        attention_inputs(runs[1:2], ["b"], ENV, "weak", load)


# ------------------------------------------------------------------ an env's sections
def test_env_results_keep_each_sections_outcome(toy, monkeypatch):
    runs = [make_run("a", s, {"step": STEPS, "episode/return": [0.0, 1.0, 2.0, 2.0], "loss/dyn": [1.0] * 4},
                     episodes={"id": [1.0 + s], "weak_a": [10.0], "weak_b": [0.0], "hard": [1.0]}) for s in (0, 1)]
    study = Study(Path("toy"), runs, [])
    results = env_results(study, ENV, OPTIONS, Samples({}))
    assert results.settings == ["id", "weak", "hard"] and results.hard == "hard"
    assert results.learning.result.thresholds["a"].median == 20 and results.losses.result.panels.keys() == {"dynamics"}
    assert results.returns.result.summary["id"]["a"].mean == pytest.approx(0.75)  # (1 / 2 + 2 / 2) / 2
    assert results.drops.result.drops["a"] == pytest.approx({"weak": 1 / 3, "hard": 1 - 0.1 / 0.75})
    for name in ("invariance", "objectness", "attention"):  # no sample files
        assert getattr(results, name).result is None and getattr(results, name).error, name
    assert len(results.invariance.problems) == 2 and results.forgetting.error.startswith("no evaluated run has a")
    correlations = results.correlations.result.correlations  # the failed sections give no values
    assert list(correlations) == ["Jaccard index", "k-NN digit accuracy after fine-tuning",
                                  "latent domain-classifier accuracy (ID vs hard)", "ID performance"]
    assert all(c == "needs at least 3 models with a value, has 0" for c in list(correlations.values())[:3])

    monkeypatch.setattr(report_results, "family_suites", lambda env: None)  # only the ID setting
    only_id = env_results(study, ENV, OPTIONS, Samples({}))
    assert only_id.hard is None and only_id.drops is None and only_id.attention is None
    assert only_id.returns.result.settings == ["id"] and not only_id.learning.result.normalised
