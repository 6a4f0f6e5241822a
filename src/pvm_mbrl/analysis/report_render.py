"""The report's presentation: Markdown (and HTML) text and PNG figures drawn from the results that
``report_results`` computed. Nothing here computes a statistic; a section whose result is not available says why
in place, and every problem found (reading the runs or computing a section) is listed at the top.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from pvm_mbrl.analysis import figures
from pvm_mbrl.analysis.correlations import Correlation
from pvm_mbrl.analysis.report_options import ReportOptions
from pvm_mbrl.analysis.report_results import (
    LOSS_KEYS,
    AttentionResult,
    CorrelationResult,
    DropsResult,
    EnvResults,
    ForgettingResult,
    InvarianceResult,
    LearningResult,
    LossesResult,
    MeanSE,
    ObjectnessResult,
    Outcome,
    ReturnsResult,
    ReturnTestsResult,
    suite_episode_counts,
)
from pvm_mbrl.analysis.statistics import ConfidenceInterval, PermutationTestResult, bootstrap_interval_is_seed_range
from pvm_mbrl.analysis.study import Run, Study
from pvm_mbrl.evaluation.settings import ID_SUITE

T = TypeVar("T")
LEARNING_TITLE = "Learning curves (Fig. 2), steps-to-threshold (Table III), permutation tests"


@dataclass
class Markdown:
    """The report's text, built section by section."""

    lines: list[str] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines += [*lines, ""]

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.add("| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                 *("| " + " | ".join(str(c) for c in row) + " |" for row in rows))

    def figure(self, path: Path, relative_to: Path, caption: str) -> None:
        self.add(f"![{caption}]({path.relative_to(relative_to).as_posix()})", f"*{caption}*")


def fmt(value: float, digits: int = 3) -> str:
    """``digits`` significant digits; rounding noise (below 1e-9) shows as 0."""
    if value is None or not np.isfinite(value):
        return "—"
    return f"{0.0 if abs(value) < 1e-9 else value:.{digits}g}"


def mean_se_text(value: MeanSE) -> str:
    return f"{fmt(value.mean)} ± {fmt(value.se, 2)} (n={value.n})" if np.isfinite(value.se) else \
        f"{fmt(value.mean)} (n=1)"


def ci_text(ci: ConfidenceInterval, percent: bool = False) -> str:
    """An estimate and its interval: ``0.5 [0.2, 0.8]``, or in percent ``50% [20%, 80%]``."""
    if percent:
        return f"{100 * ci.estimate:.0f}% [{100 * ci.low:.0f}%, {100 * ci.high:.0f}%]"
    return f"{fmt(ci.estimate)} [{fmt(ci.low)}, {fmt(ci.high)}]"


def returns_kind(result: DropsResult | ReturnTestsResult) -> str:
    return "normalised returns" if result.normalised else "mean returns (no normalisation constants)"


def seed_range_note(result: ReturnsResult) -> list[str]:
    """Why an interval from 2 or 3 seeds reads as their range (``bootstrap_interval_is_seed_range``), if any has."""
    counts = sorted({v.n for per_model in result.summary.values() for v in per_model.values()
                     if v.n >= 2 and bootstrap_interval_is_seed_range(v.n)})
    if not counts:
        return []
    return [f"With {' or '.join(map(str, counts))} seeds, a 95% percentile-bootstrap interval runs from the lowest "
            f"seed to the highest (a resample of one seed alone is likelier than 2.5%), and the IQM of fewer than 4 "
            f"seeds is their mean: read these intervals as the seeds' range, which covers the true value less often "
            f"than a 95% interval should."]


def permutation_text(test: PermutationTestResult | str) -> str:
    return f"{fmt(test.statistic)} (p={fmt(test.p_value, 2)})" if isinstance(test, PermutationTestResult) \
        else f"— ({test})"


def bars(summary: dict[str, MeanSE]) -> dict[str, tuple[float, float]]:
    """``figures.plot_bars``' (mean, error) per model."""
    return {model: (value.mean, value.se) for model, value in summary.items()}


def evaluated_text(run: Run) -> str:
    counts = suite_episode_counts(run)
    return "—" if counts is None else ", ".join(f"{suite} ({n})" for suite, n in counts.items())


class ReportRenderer:
    """Writes the report of one study into ``out_dir`` (figures under ``figures_dir``, default ``out_dir/figures``,
    linked relative to ``out_dir``) from its results."""

    def __init__(self, study: Study, out_dir: Path, options: ReportOptions, figures_dir: Path | None = None):
        self.study, self.out, self.options = study, out_dir, options
        self.figures = figures_dir or out_dir / "figures"
        self.md = Markdown()
        self.problems = list(study.problems)

    def render(self, results: Sequence[EnvResults]) -> str:
        """The report's Markdown text; the figures are written on the way."""
        study, o = self.study, self.options
        for env in results:
            self.env_report(env)
        body = Markdown()
        body.add(f"# Study report: {study.path.name}",
                 f"{len(study.runs)} runs in `{study.path}`; envs: {', '.join(study.envs())}. Tidy episode table: "
                 f"`{study.path.name}/returns.csv` (one row per run x suite x episode). Settings: learning curves of "
                 f"`{o.curve_key}` smoothed over {o.curve_window:g} env steps (band: std over seeds); steps-to-"
                 f"threshold at {o.threshold_fraction:.0%} of the smoothed maximum with a {o.threshold_window:g}-step "
                 f"window; losses smoothed over {o.loss_window:g} steps; {o.permutations:,} permutations; "
                 f"{o.bootstrap:,} bootstrap resamples.")
        body.add(*(f"> {note}\n" for note in o.notes))
        body.add("## Runs")
        body.table(["run", "env", "model", "seed", "training", "evaluated suites (episodes)"],
                   [[r.name, r.env, r.model, r.seed, r.state, evaluated_text(r)] for r in study.runs])
        body.add("## Problems found", *(f"- {p}" for p in self.problems) if self.problems else ["None."])
        return "\n".join(body.lines + self.md.lines)

    def section(self, title: str, outcome: Outcome[T], render: Callable[[T], None]) -> None:
        """A section: its result rendered, or why it is not available; its problems join the report's list."""
        self.md.add(f"### {title}")
        self.problems += outcome.problems
        if outcome.error is None:
            render(outcome.result)
        elif not outcome.applicable:
            self.md.add(f"_Not applicable: {outcome.error}_")
        else:
            self.unavailable(title, outcome.error)

    def unavailable(self, title: str, reason: str) -> None:
        self.md.add(f"_Not available: {reason}_")
        self.problems.append(f"{title}: {reason}")

    def figure_path(self, env: str, name: str) -> Path:
        return self.figures / f"{env.replace(':', '-')}_{name}.png"

    def env_report(self, results: EnvResults) -> None:
        env, hard = results.env, results.hard
        self.md.add(f"## {env}")
        if hard is not None:
            self.headline(results)
        self.section(LEARNING_TITLE, results.learning, lambda r: self.learning(env, r))
        self.section("World-model losses (Fig. 3)", results.losses, lambda r: self.losses(env, r))
        self.section("Returns per evaluation setting (Fig. 4)", results.returns, lambda r: self.returns(env, r))
        if hard is None:
            self.md.add(f"_{env} has only the `{ID_SUITE}` suite: no OOD setting, so no relative drops, latent "
                        f"invariance, hard-OOD correlations or OOD attention maps._")
            self.section("Forgetting (Fig. 5)", results.forgetting, lambda r: self.forgetting(env, r))
            return
        self.section("Relative drop from ID", results.drops, self.drops)
        self.section("Permutation tests on returns", results.tests, self.return_tests)
        self.section(f"Latent invariance, ID vs {hard} (Fig. 6)", results.invariance,
                     lambda r: self.invariance(env, hard, r))
        self.section("Forgetting (Fig. 5)", results.forgetting, lambda r: self.forgetting(env, r))
        self.section("Objectness (Jaccard index)", results.objectness, self.objectness)
        self.section(f"Correlation with {hard} return across models (Table IV)", results.correlations,
                     lambda r: self.correlations(hard, r))
        self.section(f"Saliency maps, ID and {hard} (Fig. 7)", results.attention,
                     lambda r: self.attention(env, hard, r))

    # ---------------------------------------------------------------- sections
    def learning(self, env: str, result: LearningResult) -> None:
        o = self.options
        label = f"normalised {o.curve_key}" if result.normalised else o.curve_key
        path = figures.plot_curves({env: result.bands}, label, self.figure_path(env, "fig2_learning_curves"))
        self.md.figure(path, self.out, f"Fig. 2: {label}, mean ± std over seeds, smoothed over {o.curve_window:g} "
                                       f"env steps")
        self.md.add(f"Table III: env steps until the {o.threshold_window:g}-step smoothed curve first reaches "
                    f"{o.threshold_fraction:.0%} of its maximum; median (min – max) over seeds.")
        self.md.table(["model", "steps-to-threshold", "seeds"],
                      [[model, f"{t.median:,.0f} ({t.low:,.0f} – {t.high:,.0f})", len(t.per_seed)]
                       for model, t in result.thresholds.items()])
        if result.tests_error is not None:
            self.unavailable(LEARNING_TITLE, result.tests_error)
            return
        if result.tests is None:
            self.md.add("_Permutation tests need two models._")
            return
        self.md.add(f"Permutation tests: statistic = area between the two models' mean {label} curves; p-value of "
                    f"the null that all curves come from one distribution, exact over all splits of the seeds when "
                    f"there are at most {o.permutations:,}, else that many random ones (no multiple-comparison "
                    f"correction).")
        self.md.table(["model A", "model B", "area", "p"],
                      [[a, b, fmt(t.statistic), fmt(t.p_value, 2)] for (a, b), t in result.tests.items()])

    def losses(self, env: str, result: LossesResult) -> None:
        panels = {f"{name} ({LOSS_KEYS[name]})": curves for name, curves in result.panels.items()}
        path = figures.plot_curves(panels, "loss", self.figure_path(env, "fig3_world_model_losses"))
        self.md.figure(path, self.out, f"Fig. 3: world-model losses, mean ± std over seeds, smoothed over "
                                       f"{self.options.loss_window:g} env steps")

    def returns(self, env: str, result: ReturnsResult) -> None:
        settings = result.settings
        label = ("normalised return" if result.normalised
                 else "mean return (no normalisation constants for this family)")
        path = figures.plot_bars({s: bars(result.summary[s]) for s in settings}, label,
                                 self.figure_path(env, "fig4_returns"))
        self.md.figure(path, self.out, f"Fig. 4: {label} per setting, mean over seeds ± standard error "
                                       "(no error bar for a single seed)")
        self.md.add(f"{label.capitalize()} per setting: mean ± standard error over seeds (each seed: the mean over "
                    f"its evaluation episodes; a group averages its suites).")
        self.md.table(["model", *settings],
                      [[m, *(mean_se_text(result.summary[s][m]) if m in result.summary[s] else "—" for s in settings)]
                       for m in result.models])
        self.md.add("IQM over seeds with a 95% stratified-bootstrap confidence interval (Agarwal et al. 2021).")
        self.md.table(["model", *settings],
                      [[m, *("— (needs 2 seeds)" if (ci := result.iqm[m][s]) is None
                             else ci_text(ci) for s in settings)]
                       for m in result.models])
        self.md.add(*seed_range_note(result))

    def headline(self, results: EnvResults) -> None:
        """The answer in one table: IQM per setting, the drop to hard OOD, and the tests against the first model."""
        returns, drops, tests = (o.result if o else None for o in (results.returns, results.drops, results.tests))
        self.md.add("### Headline: ID vs OOD returns")
        if returns is None:
            self.md.add("_Not available: no evaluated run (see the sections below)._")
            return
        hard, baseline = results.settings[-1], returns.models[0]
        headers = ["model", *(f"{s} IQM [95% CI]" for s in returns.settings)]
        if drops is not None:
            headers.append(f"drop {ID_SUITE} -> {hard} [95% CI]")
        if tests is not None:
            headers += [f"vs {baseline}: {hard} p", f"vs {baseline}: drop p"]
        rows = []
        for model in returns.models:
            row = [model, *(ci_text(ci) if (ci := returns.iqm[model][s]) is not None
                            else mean_se_text(returns.summary[s][model]) if model in returns.summary[s] else "—"
                            for s in returns.settings)]
            if drops is not None:
                interval, drop = drops.intervals[model].get(hard), drops.drops[model]
                row.append(ci_text(interval, percent=True) if isinstance(interval, ConfidenceInterval)
                           else f"{100 * drop[hard]:.0f}%" if isinstance(drop, dict) and hard in drop else "—")
            if tests is not None:
                pair = tests.tests.get((baseline, model), {})
                row += ["—" if not isinstance(t := pair.get(c), PermutationTestResult) else fmt(t.p_value, 2)
                        for c in (hard, tests.columns[-1])]
            rows.append(row)
        label = "normalised return (0 = random policy, 1 = the task's maximum)" if returns.normalised else "return"
        self.md.add(f"IQM of the {label} over seeds with a 95% stratified-bootstrap interval; relative drop from "
                    f"{ID_SUITE} to {hard} with a paired-bootstrap interval over seeds; two-sided permutation-test "
                    f"p-values against {baseline} on the {hard} return and on the drop (cells without an "
                    f"interval or test: see the sections below for why; a single seed shows its score, n=1, and its "
                    f"drop). With n seeds per model only C(2n, n) splits of the seeds exist, so p cannot fall below "
                    f"2 / C(2n, n): 1 for one seed each, 0.33 for two, 0.1 for three.")
        self.md.table(headers, rows)
        self.md.add(*seed_range_note(returns))

    def drops(self, result: DropsResult) -> None:
        rows, reasons = [], {}
        for model, drops in result.drops.items():
            if isinstance(drops, str):
                rows.append([model, *([f"— ({drops})"] * len(result.settings))])
                continue
            cells = []
            for setting in result.settings:
                interval = result.intervals[model].get(setting)
                if setting not in drops:
                    cells.append("—")
                elif isinstance(interval, ConfidenceInterval):
                    cells.append(ci_text(interval, percent=True))
                else:
                    cells.append(f"{100 * drops[setting]:.0f}%")
                    reasons.setdefault(str(interval), []).append(f"{model} ({setting})")
            rows.append([model, *cells])
        self.md.add(f"(mean ID - mean OOD) / mean ID over the seeds evaluated in both, on {returns_kind(result)}, "
                    f"with a 95% paired-bootstrap interval over those seeds (each seed's ID and OOD returns resampled "
                    f"together); " + ("above 100% is worse than random." if result.normalised
                                      else "above 100%: the mean OOD return is below 0."))
        self.md.table(["model", *result.settings], rows)
        if reasons:
            self.md.add(*(f"- No interval for {', '.join(where)}: {why}" for why, where in reasons.items()))

    def return_tests(self, result: ReturnTestsResult) -> None:
        if not result.tests:
            self.md.add("_Permutation tests need two models._")
            return
        self.md.add(f"Two-sided permutation tests between models on their per-seed {returns_kind(result)} in each "
                    f"setting (|difference of means|) and on their relative drops (|difference of the drops|, each "
                    f"as in the drop table; a relabelling moves a seed's ID and OOD returns together), with p: exact "
                    f"over all splits of the seeds when there are at most {self.options.permutations:,}, else that "
                    f"many random ones; with n seeds per model p cannot fall below 2 / C(2n, n) (0.1 for 3 against "
                    f"3). No multiple-comparison correction.")
        self.md.table(["model A", "model B", *result.columns],
                      [[a, b, *(permutation_text(tests[c]) for c in result.columns)]
                       for (a, b), tests in result.tests.items()])

    def invariance(self, env: str, hard: str, result: InvarianceResult) -> None:
        embeddings = {m: (e.points, e.n_id, f"seed {e.seed}; k-NN domain acc. {e.accuracy:.2f}")
                      for m, e in result.embeddings.items()}
        path = figures.plot_embeddings(embeddings, self.figure_path(env, "fig6_umap"), ("ID", hard))
        self.md.figure(path, self.out, f"Fig. 6: UMAP (n_neighbors=20, min_dist=0.3) of z_t from ID (blue) and "
                                       f"{hard} (pink) observations, one seed per model")
        self.md.add("Overlap, measured: 5-fold cross-validated accuracy of a 5-NN classifier telling ID latents from "
                    f"{hard} ones (balanced; 0.5 = the domains overlap completely, 1.0 = fully separated).")
        self.md.table(["model", "domain-classifier accuracy"],
                      [[m, mean_se_text(v)] for m, v in result.summary.items()])

    def forgetting(self, env: str, result: ForgettingResult) -> None:
        groups = {"before fine-tuning": bars({m: r.before for m, r in result.rows.items()}),
                  "after fine-tuning": bars({m: r.after for m, r in result.rows.items()})}
        path = figures.plot_bars(groups, "5-NN digit accuracy", self.figure_path(env, "fig5_forgetting"))
        self.md.figure(path, self.out, "Fig. 5: 5-NN classification accuracy (scikit-learn digits, 80/20 split) with "
                                       "the encoder's features before and after fine-tuning; mean ± SE over seeds")
        self.md.table(["model", "before", "after", "drop"],
                      [[m, mean_se_text(r.before), mean_se_text(r.after), fmt(r.drop)] for m, r in result.rows.items()])

    def objectness(self, result: ObjectnessResult) -> None:
        self.md.add("Jaccard index between the encoder's saliency map (thresholded to keep 60% of its mass, as DINO) "
                    f"and the target object's mask from the simulator, over ID frames with the object in view "
                    f"({result.frames} frames in all).")
        self.md.table(["model", "Jaccard index"], [[m, mean_se_text(v)] for m, v in result.summary.items()])

    def correlations(self, hard: str, result: CorrelationResult) -> None:
        self.md.add(f"Pearson correlation across models (each averaged over its seeds) with the {hard} return.")
        self.md.table(["property", "Pearson r", "p", "models"],
                      [[name, fmt(c.r, 2), fmt(c.p_value, 2), c.models] if isinstance(c, Correlation)
                       else [name, f"— ({c})", "—", "—"] for name, c in result.correlations.items()])

    def attention(self, env: str, hard: str, result: AttentionResult) -> None:
        path = figures.plot_attention(result.frames, self.figure_path(env, "fig7_saliency"))
        self.md.figure(path, self.out, f"Fig. 7: the encoder's saliency map (ViTs: last-block [CLS] attention "
                                       f"averaged over heads; others: gradient saliency) on an ID and a {hard} frame")


def render_report(study: Study, results: Sequence[EnvResults], out_dir: Path, options: ReportOptions,
                  figures_dir: Path | None = None) -> str:
    """The report's Markdown text, to be saved in ``out_dir``; its figures are written under ``figures_dir``
    (default ``out_dir/figures``)."""
    return ReportRenderer(study, out_dir, options, figures_dir).render(results)


def html(markdown_text: str, title: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>" \
           f"<body>{body}</body></html>"
