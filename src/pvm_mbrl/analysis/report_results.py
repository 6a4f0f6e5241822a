"""The numbers of a study's report, computed apart from how they are shown: functions from a study's runs
(``analysis.study``'s ``Study`` and ``Run``, which can be built in memory) to frozen dataclasses that
``report_render`` turns into Markdown, HTML and figures.

A function raises ValueError (FileNotFoundError for a missing sample file) when its section cannot be computed for
this study; ``Unavailable`` also carries the per-run problems found before it stopped. ``env_results`` computes
every section of an env, keeping each as an ``Outcome`` (its result, or why it is not available, and the problems
found), in the report's order. Functions that read a run's recorded samples take ``load`` (default
``load_samples``: a run directory's own sample files), so they can be given samples held in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np
import pandas as pd

from pvm_mbrl.analysis.correlations import Correlation, property_correlations
from pvm_mbrl.analysis.measures import (
    Curve,
    ThresholdSummary,
    normalised_return,
    relative_drop,
    smooth_curve,
    steps_to_threshold,
    suite_set_normalised_score,
)
from pvm_mbrl.analysis.objectness import objectness
from pvm_mbrl.analysis.report_options import ReportOptions
from pvm_mbrl.analysis.representations import domain_classifier_accuracy, umap_embedding
from pvm_mbrl.analysis.statistics import (
    ConfidenceInterval,
    PermutationTestResult,
    interpolate_to_common_grid,
    iqm,
    mean_and_standard_error,
    mean_difference_permutation_test,
    pairwise_permutation_tests,
    relative_drop_ci,
    relative_drop_permutation_test,
    stratified_bootstrap_ci,
)
from pvm_mbrl.analysis.study import Run, Study
from pvm_mbrl.envs.suites import SuiteSet
from pvm_mbrl.evaluation.settings import ID_SUITE, family_suites
from pvm_mbrl.rundir import RunDir

if TYPE_CHECKING:
    from pvm_mbrl.analysis.figures import Band

LOSS_KEYS = {"reconstruction": "loss/rec", "reward": "loss/rew", "dynamics": "loss/dyn"}

T = TypeVar("T")
SampleLoader = Callable[[Path, str], Mapping[str, np.ndarray]]
"""``load(run_dir, suite)``: a suite's recorded samples (``z``, ``image``, ``saliency``, ``object_mask``)."""


def load_samples(run_dir: Path, suite: str) -> Mapping[str, np.ndarray]:
    """The default ``SampleLoader``: the files the run's evaluation wrote."""
    return RunDir(run_dir).load_samples(suite)

Curves = dict[str, dict[int, Curve]]
"""model -> {seed: (steps, values)}."""
SaliencyFrame = tuple[str, np.ndarray, np.ndarray]
"""(row label, image HxWx3, saliency HxW)."""


# ------------------------------------------------------------------ outcomes of sections
class Unavailable(ValueError):
    """A section that cannot be computed, with the per-run problems found before it stopped."""

    def __init__(self, reason: str, problems: Sequence[str] = ()):
        super().__init__(reason)
        self.problems = tuple(problems)


class NotApplicable(Unavailable):
    """A section that does not apply to the study's env (e.g. objectness where no env records object masks): said
    in its place, but no problem."""


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A section's result, or (``error``) why it is not available; ``problems``: per-run problems found on the way;
    ``applicable`` False when the section does not apply to the env (then its absence is no problem)."""

    result: T | None = None
    error: str | None = None
    problems: tuple[str, ...] = ()
    applicable: bool = True


def attempt(compute: Callable[[], T]) -> Outcome[T]:
    """``compute()`` as an ``Outcome``; a ValueError or FileNotFoundError makes the section unavailable."""
    try:
        result = compute()
    except (ValueError, FileNotFoundError) as error:
        return Outcome(error=str(error), problems=getattr(error, "problems", ()),
                       applicable=not isinstance(error, NotApplicable))
    return Outcome(result, problems=getattr(result, "problems", ()))


@dataclass(frozen=True)
class MeanSE:
    """Mean and standard error over ``n`` seeds; a single seed has no standard error (NaN)."""

    mean: float
    se: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> MeanSE:
        if len(values) == 1:
            return cls(float(values[0]), float("nan"), 1)
        mean, se = mean_and_standard_error(values)
        return cls(mean, se, len(values))


def _summaries(values: Mapping[str, Sequence[float]], models: Sequence[str]) -> dict[str, MeanSE]:
    """``MeanSE`` of each of ``models`` that has values, in the order of ``models``."""
    return {m: MeanSE.of(values[m]) for m in models if m in values}


# ------------------------------------------------------------------ scores per evaluation setting
def reporting_settings(env: str) -> dict[str, list[str]]:
    """The settings an env is reported in, ID first and hard OOD last: {setting: its suites}."""
    suites = family_suites(env)
    if suites is None:
        return {ID_SUITE: [ID_SUITE]}
    settings: dict[str, list[str]] = {}
    for name in suites.suites:
        group = next((g for g, members in suites.groups.items() if name in members), None)
        if group is None:
            settings[name] = [name]
        elif group not in settings:
            settings[group] = suites.members(group)
    return settings


def _normalisable(suites: SuiteSet | None) -> bool:
    return suites is not None and all(s.random_return is not None for s in suites.suites.values())


@dataclass(frozen=True, eq=False)
class ScoreTable:
    """One row per evaluated run x setting (columns run, model, seed, setting, score): the setting's normalised
    return, or the raw mean return for families without normalisation constants (``normalised`` False)."""

    frame: pd.DataFrame
    normalised: bool
    problems: tuple[str, ...] = ()  # runs' settings left out, and why

    def by_model(self, setting: str) -> dict[str, list[float]]:
        """A setting's scores: {model: one score per seed}, models in the order of their first row."""
        part = self.frame[self.frame["setting"] == setting]
        return {model: group["score"].tolist() for model, group in part.groupby("model", sort=False)}

    def by_seed(self, setting: str) -> dict[str, dict[int, float]]:
        """A setting's scores by model and seed: {model: {seed: score}}."""
        part = self.frame[self.frame["setting"] == setting]
        return {model: dict(zip(group["seed"].tolist(), group["score"].tolist(), strict=True))
                for model, group in part.groupby("model", sort=False)}


def run_scores(study: Study, env: str) -> ScoreTable:
    """The scores of every evaluated run of ``env`` in every setting it was fully evaluated in."""
    suites = family_suites(env)
    normalised = _normalisable(suites)
    rows, problems = [], []
    for run in study.runs_of(env):
        if run.episodes is None:
            continue
        returns = run.episodes.groupby("suite")["return"]
        finite = returns.agg(lambda values: np.isfinite(values).all()).astype(bool)  # pandas' mean skips NaN
        problems += [f"{run.name}: non-finite episode returns in suite {suite}; the settings with it are left out "
                     f"of this run's scores" for suite in finite.index[~finite]]
        means = returns.mean()[finite].to_dict()
        for setting, members in reporting_settings(env).items():
            if not all(m in means for m in members):
                continue
            score = (suite_set_normalised_score(suites, setting, means) if normalised
                     else float(np.mean([means[m] for m in members])))
            rows.append({"run": run.name, "model": run.model, "seed": run.seed, "setting": setting, "score": score})
    return ScoreTable(pd.DataFrame(rows, columns=["run", "model", "seed", "setting", "score"]), normalised,
                      tuple(problems))


def suite_episode_counts(run: Run) -> dict[str, int] | None:
    """Episodes a run was evaluated on per suite (in evaluation order), or None when it is not evaluated."""
    if run.episodes is None:
        return None
    return {str(suite): int(n) for suite, n in run.episodes.groupby("suite", sort=False).size().items()}


# ------------------------------------------------------------------ curves
def collect_curves(runs: Sequence[Run], key: str,
                   normalise: Callable[[Run, np.ndarray], np.ndarray] | None = None) -> Curves:
    """Each run's curve of ``key`` logged at 2 or more steps (``normalise``d if given), by model and seed."""
    curves: Curves = {}
    for run in runs:
        curve = run.curve(key)
        if curve is not None and len(curve[0]) >= 2:
            values = normalise(run, curve[1]) if normalise else curve[1]
            curves.setdefault(run.model, {})[run.seed] = (curve[0], values)
    return curves


def band(curves: Mapping[int, Curve], window: float) -> Band:
    """Mean and standard deviation over seeds of window-smoothed curves, on their common step grid."""
    smoothed = [(steps, smooth_curve(steps, values, window)) for steps, values in curves.values()]
    grid, values = interpolate_to_common_grid(smoothed)
    return grid, values.mean(0), values.std(0)


def training_normaliser(env: str) -> Callable[[Run, np.ndarray], np.ndarray] | None:
    """Normalises a training curve with the constants of the suite the run trained in (None: no constants)."""
    suites = family_suites(env)
    if not _normalisable(suites):
        return None

    def normalise(run: Run, values: np.ndarray) -> np.ndarray:
        suite = suites.get(str(run.cfg.env.get("suite", suites.default)))
        return normalised_return(values, suite.random_return, suite.max_return)

    return normalise


@dataclass(frozen=True)
class LearningResult:
    """Learning curves (Fig. 2), steps-to-threshold (Table III) and permutation tests between models."""

    normalised: bool  # curves normalised with the training suite's constants
    bands: dict[str, Band]  # model -> smoothed mean and std over seeds
    thresholds: dict[str, ThresholdSummary]  # models with a threshold for at least one seed
    tests: dict[tuple[str, str], PermutationTestResult] | None  # None: fewer than two models
    tests_error: str | None = None  # why the permutation tests could not be computed
    problems: tuple[str, ...] = ()


def learning_curves(runs: Sequence[Run], models: Sequence[str], env: str, options: ReportOptions) -> LearningResult:
    o = options
    normalise = training_normaliser(env)
    found = collect_curves(runs, o.curve_key, normalise)
    curves = {m: found[m] for m in models if m in found}
    if not curves:
        raise ValueError(f"no run of {env} logged {o.curve_key!r} at 2 or more steps")
    bands = {m: band(c, o.curve_window) for m, c in curves.items()}
    thresholds, problems = {}, []
    for model, per_seed in curves.items():
        crossings = {}
        for seed, (steps, values) in sorted(per_seed.items()):
            try:
                crossings[seed] = steps_to_threshold(steps, values, o.threshold_window, o.threshold_fraction)
            except ValueError as error:
                problems.append(f"steps-to-threshold, {model} seed {seed}: {error}")
        if crossings:
            found_steps = list(crossings.values())
            thresholds[model] = ThresholdSummary(float(np.median(found_steps)), min(found_steps), max(found_steps),
                                                 crossings)
    tests, tests_error = None, None
    if len(curves) >= 2:
        try:
            tests = pairwise_permutation_tests(curves, num_permutations=o.permutations, seed=o.seed)
        except ValueError as error:
            tests_error = str(error)
    return LearningResult(normalise is not None, bands, thresholds, tests, tests_error, tuple(problems))


@dataclass(frozen=True)
class LossesResult:
    """World-model losses (Fig. 3): {loss name of ``LOSS_KEYS``: {model: smoothed mean and std over seeds}}."""

    panels: dict[str, dict[str, Band]]


def world_model_losses(runs: Sequence[Run], env: str, options: ReportOptions) -> LossesResult:
    panels = {}
    for name, key in LOSS_KEYS.items():
        curves = collect_curves(runs, key)
        if curves:
            panels[name] = {m: band(c, options.loss_window) for m, c in curves.items()}
    if not panels:
        raise ValueError(f"no run of {env} logged any of {', '.join(LOSS_KEYS.values())}")
    return LossesResult(panels)


# ------------------------------------------------------------------ returns and drops
@dataclass(frozen=True)
class ReturnsResult:
    """Return per evaluation setting (Fig. 4) of each model over its seeds."""

    normalised: bool
    settings: list[str]  # the settings evaluated, ID first
    models: list[str]  # every model of the env, evaluated or not
    summary: dict[str, dict[str, MeanSE]]  # setting -> model -> mean and SE (models with scores, in model order)
    iqm: dict[str, dict[str, ConfidenceInterval | None]]  # model -> setting -> IQM and 95% CI (None: < 2 seeds)
    problems: tuple[str, ...] = ()  # the score table's


def returns_per_setting(scores: ScoreTable, env: str, models: Sequence[str], options: ReportOptions,
                        ) -> ReturnsResult:
    if scores.frame.empty:
        raise Unavailable(f"no run of {env} has been evaluated with finite returns (run `pvm-mbrl evaluate RUN_DIR`)",
                          scores.problems)
    settings = [s for s in reporting_settings(env) if s in set(scores.frame["setting"])]
    by_setting = {s: scores.by_model(s) for s in settings}
    summary = {s: _summaries(by_setting[s], models) for s in settings}
    intervals: dict[str, dict[str, ConfidenceInterval | None]] = {}
    for model in models:
        intervals[model] = {}
        for setting in settings:
            values = by_setting[setting].get(model, [])
            intervals[model][setting] = (stratified_bootstrap_ci(values, iqm, options.bootstrap, seed=options.seed)
                                         if len(values) >= 2 else None)
    return ReturnsResult(scores.normalised, settings, list(models), summary, intervals, scores.problems)


@dataclass(frozen=True)
class DropsResult:
    """Relative drop from ID of each model in each OOD setting, with paired-bootstrap intervals over seeds."""

    normalised: bool  # drops of normalised returns (else of raw mean returns)
    settings: list[str]  # the OOD settings
    drops: dict[str, dict[str, float] | str]  # model -> {OOD setting it was evaluated in: drop}, or why undefined
    intervals: dict[str, dict[str, ConfidenceInterval | str]]  # model -> {OOD setting: 95% CI, or why none}


def paired_scores(scores: ScoreTable, model: str, first: str, second: str) -> tuple[list[float], list[float]]:
    """A model's scores in two settings from the seeds evaluated in both, paired seed by seed."""
    a, b = scores.by_seed(first).get(model, {}), scores.by_seed(second).get(model, {})
    seeds = sorted(set(a) & set(b))
    return [a[s] for s in seeds], [b[s] for s in seeds]


def relative_drop_table(scores: ScoreTable, models: Sequence[str], settings: Sequence[str], options: ReportOptions,
                        ) -> DropsResult:
    """``settings``: the env's settings, ID first. Each drop and its interval come from the same seeds: those
    evaluated in both ID and the OOD setting."""
    drops: dict[str, dict[str, float] | str] = {}
    intervals: dict[str, dict[str, ConfidenceInterval | str]] = {}
    for model in models:
        per_setting: dict[str, float] = {}
        intervals[model] = {}
        for setting in settings[1:]:
            id_scores, ood_scores = paired_scores(scores, model, settings[0], setting)
            if not id_scores:
                intervals[model][setting] = f"no seed evaluated in both {settings[0]} and {setting}"
                continue
            try:
                per_setting[setting] = relative_drop(id_scores, ood_scores)
                intervals[model][setting] = relative_drop_ci(id_scores, ood_scores, options.bootstrap,
                                                             seed=options.seed)
            except ValueError as error:
                intervals[model][setting] = str(error)
        drops[model] = per_setting or "; ".join(dict.fromkeys(map(str, intervals[model].values())))
    return DropsResult(scores.normalised, list(settings[1:]), drops, intervals)


@dataclass(frozen=True)
class ReturnTestsResult:
    """Permutation tests between every pair of models on their per-seed scores in each setting and on their
    relative drops from ID to the hard OOD setting (seeds relabelled with their ID and OOD scores together)."""

    normalised: bool  # tests of normalised returns (else of raw mean returns)
    columns: list[str]  # the settings, ID first, then the drop to hard OOD
    tests: dict[tuple[str, str], dict[str, PermutationTestResult | str]]  # (model a, model b) -> column -> test;
    # empty with fewer than two models


def return_tests(scores: ScoreTable, models: Sequence[str], settings: Sequence[str], options: ReportOptions,
                 ) -> ReturnTestsResult:
    """``settings``: the env's settings, ID first and hard OOD last; pairs of ``models`` in their order."""
    drop_column = f"drop {settings[0]} -> {settings[-1]}"
    by_setting = {s: scores.by_model(s) for s in settings}
    pairs = {m: paired_scores(scores, m, settings[0], settings[-1]) for m in models}
    tests: dict[tuple[str, str], dict[str, PermutationTestResult | str]] = {}
    for a, b in itertools.combinations(models, 2):
        tests[(a, b)] = {}
        for setting in settings:
            values_a, values_b = by_setting[setting].get(a, []), by_setting[setting].get(b, [])
            tests[(a, b)][setting] = (mean_difference_permutation_test(values_a, values_b, options.permutations,
                                                                       options.seed)
                                      if values_a and values_b else "not evaluated")
        if not pairs[a][0] or not pairs[b][0]:
            tests[(a, b)][drop_column] = f"no seed evaluated in both {settings[0]} and {settings[-1]}"
            continue
        try:
            tests[(a, b)][drop_column] = relative_drop_permutation_test(*pairs[a], *pairs[b], options.permutations,
                                                                        options.seed)
        except ValueError as error:
            tests[(a, b)][drop_column] = f"drop undefined: {error}"
    return ReturnTestsResult(scores.normalised, [*settings, drop_column], tests)


# ------------------------------------------------------------------ representations
@dataclass(frozen=True)
class Embedding:
    """One seed's 2-D UMAP of latents: the first ``n_id`` rows from ID, the rest from the OOD setting."""

    points: np.ndarray
    n_id: int
    seed: int
    accuracy: float  # that seed's k-NN domain-classifier accuracy


@dataclass(frozen=True)
class InvarianceResult:
    """Latent invariance between ID and an OOD setting (Fig. 6)."""

    accuracy: dict[str, list[float]]  # model -> k-NN domain-classifier accuracy per seed (in run order)
    summary: dict[str, MeanSE]  # model order
    embeddings: dict[str, Embedding]  # model order; one seed per model
    problems: tuple[str, ...] = ()


def setting_latents(run: Run, env: str, setting: str, load: SampleLoader = load_samples) -> np.ndarray:
    """The latents ``z`` a run recorded in a setting's suites, pooled."""
    return np.concatenate([load(run.path, suite)["z"] for suite in reporting_settings(env)[setting]])


def latent_invariance(runs: Sequence[Run], models: Sequence[str], env: str, hard: str, options: ReportOptions,
                      load: SampleLoader = load_samples) -> InvarianceResult:
    o = options
    rng = np.random.default_rng(o.seed)
    accuracy: dict[str, list[float]] = {}
    embeddings: dict[str, Embedding] = {}
    problems: list[str] = []
    for run in runs:
        if run.episodes is None:
            continue
        try:
            z_id, z_ood = setting_latents(run, env, ID_SUITE, load), setting_latents(run, env, hard, load)
            accuracy.setdefault(run.model, []).append(domain_classifier_accuracy(z_id, z_ood, seed=o.seed))
        except (ValueError, FileNotFoundError) as error:
            problems.append(f"{run.name}: latent invariance: {error}")
            continue
        if run.model not in embeddings:
            z_id, z_ood = (z[rng.choice(len(z), min(len(z), o.umap_points), replace=False)] for z in (z_id, z_ood))
            try:
                points = umap_embedding(z_id, z_ood, seed=o.seed)
            except ValueError as error:
                raise Unavailable(str(error), problems) from error
            embeddings[run.model] = Embedding(points, len(z_id), run.seed, accuracy[run.model][-1])
    if not embeddings:
        raise Unavailable("no evaluated run has latent samples of both ID and hard OOD", problems)
    return InvarianceResult(accuracy, _summaries(accuracy, models), {m: embeddings[m] for m in models
                                                                      if m in embeddings}, tuple(problems))


@dataclass(frozen=True)
class ForgettingRow:
    """A model's 5-NN digit accuracy with its encoder's features before and after fine-tuning."""

    before: MeanSE
    after: MeanSE
    drop: float  # mean before - mean after


@dataclass(frozen=True)
class ForgettingResult:
    """Forgetting of pre-trained encoders (Fig. 5)."""

    rows: dict[str, ForgettingRow]  # model order
    after: dict[str, list[float]]  # model -> accuracy after fine-tuning per seed (in run order)
    problems: tuple[str, ...] = ()  # frozen encoders whose accuracy moved


def forgetting(runs: Sequence[Run], models: Sequence[str]) -> ForgettingResult:
    before: dict[str, list[float]] = {}
    after: dict[str, list[float]] = {}
    problems = []
    for run in runs:
        record = (run.analysis or {}).get("forgetting")
        if record:
            before.setdefault(run.model, []).append(record["before"])
            after.setdefault(run.model, []).append(record["after"])
            if run.finetune == "frozen" and record["before"] != record["after"]:
                problems.append(f"{run.name}: its frozen encoder's k-NN digit accuracy moved from "
                                f"{record['before']:.4g} to {record['after']:.4g}, so its weights or BatchNorm "
                                f"statistics are not the pre-trained ones it was built from (an encoder built before "
                                f"pvm-mbrl d2f0e3d folded a blank image's statistics into its BatchNorm layers)")
    if not after:
        raise ValueError("no evaluated run has a pre-trained encoder (forgetting is measured for those only)")
    ordered = [m for m in models if m in after]
    summary_before, summary_after = _summaries(before, ordered), _summaries(after, ordered)
    rows = {m: ForgettingRow(summary_before[m], summary_after[m], float(np.mean(before[m]) - np.mean(after[m])))
            for m in ordered}
    return ForgettingResult(rows, after, tuple(problems))


@dataclass(frozen=True)
class ObjectnessResult:
    """Jaccard index between the encoder's thresholded saliency and the object's mask over ID frames."""

    scores: dict[str, list[float]]  # model -> Jaccard index per seed (in run order)
    summary: dict[str, MeanSE]  # model order
    frames: int  # frames with the object in view, over all runs
    problems: tuple[str, ...] = ()


def objectness_scores(runs: Sequence[Run], models: Sequence[str],
                      load: SampleLoader = load_samples) -> ObjectnessResult:
    scores: dict[str, list[float]] = {}
    frames, recorded_masks = 0, False
    problems: list[str] = []
    for run in runs:
        if run.episodes is None:
            continue
        try:
            samples = load(run.path, ID_SUITE)
        except FileNotFoundError as error:
            raise Unavailable(str(error), problems) from error
        if "object_mask" not in samples or "saliency" not in samples:
            continue
        recorded_masks = True
        try:
            score, used = objectness(samples["saliency"], samples["object_mask"])
        except ValueError as error:
            problems.append(f"{run.name}: objectness: {error}")
            continue
        scores.setdefault(run.model, []).append(score)
        frames += used
    if not recorded_masks:
        raise NotApplicable("no evaluated run recorded object masks with its ID frames (only envs with masks, e.g. "
                            "tabletop, provide them)", problems)
    if not scores:
        raise Unavailable("no run with object masks gave a score (see the problems found)", problems)
    return ObjectnessResult(scores, _summaries(scores, models), frames, tuple(problems))


# ------------------------------------------------------------------ correlations and attention
@dataclass(frozen=True)
class CorrelationResult:
    """Pearson correlation across models of each property with the hard-OOD return (Table IV): {property: r, or
    why undefined}; ``ID performance`` last."""

    correlations: dict[str, Correlation | str]


def hard_ood_correlations(scores: ScoreTable, hard: str, properties: Mapping[str, Mapping[str, Sequence[float]]],
                          ) -> CorrelationResult:
    """``properties``: {name: {model: one value per seed}}; each model's values (and scores) are averaged."""
    target = {m: float(np.mean(v)) for m, v in scores.by_model(hard).items()}
    columns = {name: {m: float(np.mean(v)) for m, v in values.items()} for name, values in properties.items()}
    columns["ID performance"] = {m: float(np.mean(v)) for m, v in scores.by_model(ID_SUITE).items()}
    return CorrelationResult(property_correlations(columns, target))


@dataclass(frozen=True)
class AttentionResult:
    """Saliency maps (Fig. 7): per model, one seed's ID frame and hard-OOD frame, the object in view if it can be."""

    frames: dict[str, list[SaliencyFrame]]


def attention_inputs(runs: Sequence[Run], models: Sequence[str], env: str, hard: str,
                     load: SampleLoader = load_samples) -> AttentionResult:
    frames = {}
    for model in models:
        for run in (r for r in runs if r.model == model and r.episodes is not None):
            entries = []
            for label, suite in ((ID_SUITE, ID_SUITE), (hard, reporting_settings(env)[hard][-1])):
                samples = load(run.path, suite)
                if "saliency" not in samples:
                    break
                visible = samples["object_mask"].any((1, 2)) if "object_mask" in samples else None
                index = int(np.argmax(visible)) if visible is not None and visible.any() else 0
                entries.append((label, samples["image"][index], samples["saliency"][index]))
            if len(entries) == 2:
                frames[model] = entries
                break
    if not frames:
        raise ValueError("no evaluated run recorded frames with saliency maps")
    return AttentionResult(frames)


# ------------------------------------------------------------------ an env's report
@dataclass(frozen=True)
class EnvResults:
    """Every section of an env's report; the OOD sections are None for an env with only the ID setting."""

    env: str
    settings: list[str]  # ID first, hard OOD last
    learning: Outcome[LearningResult]
    losses: Outcome[LossesResult]
    returns: Outcome[ReturnsResult]
    forgetting: Outcome[ForgettingResult]
    drops: Outcome[DropsResult] | None = None
    tests: Outcome[ReturnTestsResult] | None = None
    invariance: Outcome[InvarianceResult] | None = None
    objectness: Outcome[ObjectnessResult] | None = None
    correlations: Outcome[CorrelationResult] | None = None
    attention: Outcome[AttentionResult] | None = None

    @property
    def hard(self) -> str | None:
        """The hard-OOD setting, None without an OOD setting."""
        return self.settings[-1] if len(self.settings) > 1 else None


def env_results(study: Study, env: str, options: ReportOptions, load: SampleLoader = load_samples) -> EnvResults:
    runs, models = study.runs_of(env), study.models(env)
    scores = run_scores(study, env)
    settings = list(reporting_settings(env))
    common = dict(learning=attempt(lambda: learning_curves(runs, models, env, options)),
                  losses=attempt(lambda: world_model_losses(runs, env, options)),
                  returns=attempt(lambda: returns_per_setting(scores, env, models, options)))
    if len(settings) < 2:
        return EnvResults(env, settings, **common, forgetting=attempt(lambda: forgetting(runs, models)))
    hard = settings[-1]
    drops = attempt(lambda: relative_drop_table(scores, models, settings, options))
    tests = attempt(lambda: return_tests(scores, models, settings, options))
    invariance = attempt(lambda: latent_invariance(runs, models, env, hard, options, load))
    forgotten = attempt(lambda: forgetting(runs, models))
    jaccard = attempt(lambda: objectness_scores(runs, models, load))
    properties = {"Jaccard index": jaccard.result.scores if jaccard.result else {},
                  "k-NN digit accuracy after fine-tuning": forgotten.result.after if forgotten.result else {},
                  f"latent domain-classifier accuracy (ID vs {hard})":
                      invariance.result.accuracy if invariance.result else {}}
    return EnvResults(env, settings, **common, forgetting=forgotten, drops=drops, tests=tests, invariance=invariance,
                      objectness=jaccard, correlations=attempt(lambda: hard_ood_correlations(scores, hard, properties)),
                      attention=attempt(lambda: attention_inputs(runs, models, env, hard, load)))


def study_results(study: Study, options: ReportOptions, load: SampleLoader = load_samples) -> list[EnvResults]:
    """The results of every env of the study, envs in name order."""
    return [env_results(study, env, options, load) for env in study.envs()]
