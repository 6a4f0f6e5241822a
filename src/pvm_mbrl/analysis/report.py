"""``pvm-mbrl report STUDY_DIR``: one Markdown (and HTML) report of a study with every table and figure of the
paper's sections IV-D and V, readable without the code.

Per env of the study: learning curves (Fig. 2), steps-to-threshold (Table III) and permutation tests between models,
world-model losses (Fig. 3), normalised return per evaluation setting (Fig. 4) with relative drops from ID and IQM
confidence intervals, latent invariance (UMAP, Fig. 6, and a k-NN domain-classifier accuracy), forgetting (Fig. 5),
objectness (Jaccard index), correlations with hard-OOD return (Table IV) and saliency maps (Fig. 7).

An evaluation *setting* is a suite or a group of suites (driving's ``weak`` and ``strong`` average two each, as the
paper reports them); the hard-OOD setting is the family's last one. A section that cannot be computed for this study
(one seed, no OOD suite, no pre-trained encoder, ...) says why in place, and every problem found in the runs is
listed at the top, so the report always covers what can be covered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pvm_mbrl.analysis import figures
from pvm_mbrl.analysis.correlations import Correlation, property_correlations
from pvm_mbrl.analysis.measures import (
    normalised_return,
    relative_drops,
    smooth_curve,
    steps_to_threshold,
    suite_set_normalised_score,
)
from pvm_mbrl.analysis.objectness import objectness
from pvm_mbrl.analysis.representations import domain_classifier_accuracy, umap_embedding
from pvm_mbrl.analysis.statistics import (
    interpolate_to_common_grid,
    iqm,
    mean_and_standard_error,
    pairwise_permutation_tests,
    stratified_bootstrap_ci,
)
from pvm_mbrl.analysis.study import Run, Study, read_study
from pvm_mbrl.envs.suites import SuiteSet
from pvm_mbrl.evaluation.settings import ID_SUITE, family_suites
from pvm_mbrl.rundir import RunDir

LOSS_KEYS = {"reconstruction": "loss/rec", "reward": "loss/rew", "dynamics": "loss/dyn"}
REPORT_DIR = "report"


@dataclass(frozen=True)
class ReportOptions:
    """Settings of the analyses; the defaults are the paper's (windows in env steps)."""

    curve_key: str = "episode/return"
    curve_window: float = 50_000
    threshold_window: float = 20_000
    threshold_fraction: float = 0.9
    loss_window: float = 2_000
    permutations: int = 10_000
    bootstrap: int = 50_000
    umap_points: int = 300
    seed: int = 0
    notes: tuple[str, ...] = ()  # shown under the title (e.g. a study's "too small for conclusions")


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


def _fmt(value: float, digits: int = 3) -> str:
    """``digits`` significant digits; rounding noise (below 1e-9) shows as 0."""
    if value is None or not np.isfinite(value):
        return "—"
    return f"{0.0 if abs(value) < 1e-9 else value:.{digits}g}"


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error over seeds; a single seed has no standard error (NaN)."""
    if len(values) == 1:
        return float(values[0]), float("nan")
    return mean_and_standard_error(values)


def _mean_se_text(values: Sequence[float]) -> str:
    mean, se = _mean_se(values)
    return f"{_fmt(mean)} ± {_fmt(se, 2)} (n={len(values)})" if np.isfinite(se) else f"{_fmt(mean)} (n=1)"


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


def run_scores(study: Study, env: str) -> tuple[pd.DataFrame, bool]:
    """One row per evaluated run x setting: the setting's normalised return (raw mean return for families
    without normalisation constants); and whether scores are normalised."""
    suites = family_suites(env)
    normalised = _normalisable(suites)
    rows = []
    for run in study.runs_of(env):
        if run.episodes is None:
            continue
        means = run.episodes.groupby("suite")["return"].mean().to_dict()
        for setting, members in reporting_settings(env).items():
            if not all(m in means for m in members):
                continue
            score = (suite_set_normalised_score(suites, setting, means) if normalised
                     else float(np.mean([means[m] for m in members])))
            rows.append({"run": run.name, "model": run.model, "seed": run.seed, "setting": setting, "score": score})
    return pd.DataFrame(rows, columns=["run", "model", "seed", "setting", "score"]), normalised


def _scores_by_model(scores: pd.DataFrame, setting: str) -> dict[str, list[float]]:
    part = scores[scores["setting"] == setting]
    return {model: group["score"].tolist() for model, group in part.groupby("model", sort=False)}


# ------------------------------------------------------------------ curves
def _curves(runs: Sequence[Run], key: str, normalise: Callable[[Run, np.ndarray], np.ndarray] | None,
            ) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    curves: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for run in runs:
        curve = run.curve(key)
        if curve is not None and len(curve[0]) >= 2:
            values = normalise(run, curve[1]) if normalise else curve[1]
            curves.setdefault(run.model, {})[run.seed] = (curve[0], values)
    return curves


def _band(curves: dict[int, tuple[np.ndarray, np.ndarray]], window: float) -> figures.Band:
    """Mean and standard deviation over seeds of window-smoothed curves, on their common step grid."""
    smoothed = [(steps, smooth_curve(steps, values, window)) for steps, values in curves.values()]
    grid, values = interpolate_to_common_grid(smoothed)
    return grid, values.mean(0), values.std(0)


def _training_normaliser(env: str) -> Callable[[Run, np.ndarray], np.ndarray] | None:
    """Normalises a training curve with the constants of the suite the run trained in."""
    suites = family_suites(env)
    if not _normalisable(suites):
        return None

    def normalise(run: Run, values: np.ndarray) -> np.ndarray:
        suite = suites.get(str(run.cfg.env.get("suite", suites.default)))
        return normalised_return(values, suite.random_return, suite.max_return)

    return normalise


# ------------------------------------------------------------------ the report
class Report:
    """Builds the report of one study into ``out_dir`` (figures under ``out_dir/figures``)."""

    def __init__(self, study: Study, out_dir: Path, options: ReportOptions):
        self.study, self.out, self.options = study, out_dir, options
        self.figures = out_dir / "figures"
        self.md = Markdown()
        self.problems = list(study.problems)

    def section(self, title: str, body: Callable[[], None]) -> None:
        """A section whose data problems (ValueError, missing files) are stated in place instead of failing."""
        self.md.add(f"### {title}")
        try:
            body()
        except (ValueError, FileNotFoundError) as error:
            self.md.add(f"_Not available: {error}_")
            self.problems.append(f"{title}: {error}")

    def figure_path(self, env: str, name: str) -> Path:
        return self.figures / f"{env.replace(':', '-')}_{name}.png"

    def build(self) -> str:
        study, o = self.study, self.options
        body = Markdown()
        for env in study.envs():
            self.env_report(env)
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
                   [[r.name, r.env, r.model, r.seed, r.state, self.evaluated(r)] for r in study.runs])
        body.add("## Problems found", *(f"- {p}" for p in self.problems) if self.problems else ["None."])
        return "\n".join(body.lines + self.md.lines)

    @staticmethod
    def evaluated(run: Run) -> str:
        if run.episodes is None:
            return "—"
        counts = run.episodes.groupby("suite", sort=False).size()
        return ", ".join(f"{suite} ({n})" for suite, n in counts.items())

    def env_report(self, env: str) -> None:
        self.md.add(f"## {env}")
        runs = self.study.runs_of(env)
        models = self.study.models(env)
        scores, normalised = run_scores(self.study, env)
        settings = list(reporting_settings(env))
        self.section("Learning curves (Fig. 2), steps-to-threshold (Table III), permutation tests",
                     lambda: self.learning(env, runs, models))
        self.section("World-model losses (Fig. 3)", lambda: self.losses(env, runs))
        self.section("Returns per evaluation setting (Fig. 4)", lambda: self.returns(env, scores, normalised, models))
        if len(settings) < 2:
            self.md.add(f"_{env} has only the `{ID_SUITE}` suite: no OOD setting, so no relative drops, latent "
                        f"invariance, hard-OOD correlations or OOD attention maps._")
            self.section("Forgetting (Fig. 5)", lambda: self.forgetting(env, runs, models))
            return
        hard = settings[-1]
        self.section("Relative drop from ID", lambda: self.drops(scores, models, settings))
        overlap: dict[str, list[float]] = {}
        self.section(f"Latent invariance, ID vs {hard} (Fig. 6)",
                     lambda: overlap.update(self.invariance(env, runs, models, hard)))
        forgetting: dict[str, list[float]] = {}
        self.section("Forgetting (Fig. 5)", lambda: forgetting.update(self.forgetting(env, runs, models)))
        jaccard: dict[str, list[float]] = {}
        self.section("Objectness (Jaccard index)", lambda: jaccard.update(self.objectness(runs, models)))
        self.section(f"Correlation with {hard} return across models (Table IV)",
                     lambda: self.correlations(scores, hard, {
                         "Jaccard index": jaccard, "k-NN digit accuracy after fine-tuning": forgetting,
                         f"latent domain-classifier accuracy (ID vs {hard})": overlap}))
        self.section(f"Saliency maps, ID and {hard} (Fig. 7)", lambda: self.attention(env, runs, models, hard))

    # ---------------------------------------------------------------- sections
    def learning(self, env: str, runs: Sequence[Run], models: Sequence[str]) -> None:
        o = self.options
        normalise = _training_normaliser(env)
        found = _curves(runs, o.curve_key, normalise)
        curves = {m: found[m] for m in models if m in found}
        if not curves:
            raise ValueError(f"no run of {env} logged {o.curve_key!r} at 2 or more steps")
        label = f"normalised {o.curve_key}" if normalise else o.curve_key
        path = figures.plot_curves({env: {m: _band(c, o.curve_window) for m, c in curves.items()}}, label,
                                   self.figure_path(env, "fig2_learning_curves"))
        self.md.figure(path, self.out, f"Fig. 2: {label}, mean ± std over seeds, smoothed over {o.curve_window:g} "
                                       f"env steps")
        rows = []
        for model, per_seed in curves.items():
            crossings = []
            for seed, (steps, values) in sorted(per_seed.items()):
                try:
                    crossings.append(steps_to_threshold(steps, values, o.threshold_window, o.threshold_fraction))
                except ValueError as error:
                    self.problems.append(f"steps-to-threshold, {model} seed {seed}: {error}")
            if crossings:
                rows.append([model, f"{np.median(crossings):,.0f} ({min(crossings):,.0f} – {max(crossings):,.0f})",
                             len(crossings)])
        self.md.add(f"Table III: env steps until the {o.threshold_window:g}-step smoothed curve first reaches "
                    f"{o.threshold_fraction:.0%} of its maximum; median (min – max) over seeds.")
        self.md.table(["model", "steps-to-threshold", "seeds"], rows)
        if len(curves) < 2:
            self.md.add("_Permutation tests need two models._")
            return
        tests = pairwise_permutation_tests(curves, num_permutations=o.permutations, seed=o.seed)
        self.md.add(f"Permutation tests ({o.permutations:,} permutations): statistic = area between the two models' "
                    f"mean {label} curves; p-value of the null that all curves come from one distribution (no "
                    f"multiple-comparison correction).")
        self.md.table(["model A", "model B", "area", "p"],
                      [[a, b, _fmt(t.statistic), _fmt(t.p_value, 2)] for (a, b), t in tests.items()])

    def losses(self, env: str, runs: Sequence[Run]) -> None:
        o = self.options
        panels = {}
        for title, key in LOSS_KEYS.items():
            curves = _curves(runs, key, None)
            if curves:
                panels[f"{title} ({key})"] = {m: _band(c, o.loss_window) for m, c in curves.items()}
        if not panels:
            raise ValueError(f"no run of {env} logged any of {', '.join(LOSS_KEYS.values())}")
        path = figures.plot_curves(panels, "loss", self.figure_path(env, "fig3_world_model_losses"))
        self.md.figure(path, self.out, f"Fig. 3: world-model losses, mean ± std over seeds, smoothed over "
                                       f"{o.loss_window:g} env steps")

    def returns(self, env: str, scores: pd.DataFrame, normalised: bool, models: Sequence[str]) -> None:
        if scores.empty:
            raise ValueError(f"no run of {env} has been evaluated (run `pvm-mbrl evaluate RUN_DIR`)")
        settings = [s for s in reporting_settings(env) if s in set(scores["setting"])]
        label = "normalised return" if normalised else "mean return (no normalisation constants for this family)"
        by_setting = {s: _scores_by_model(scores, s) for s in settings}
        bars = {s: {m: _mean_se(by_setting[s][m]) for m in models if m in by_setting[s]} for s in settings}
        path = figures.plot_bars(bars, label, self.figure_path(env, "fig4_returns"))
        self.md.figure(path, self.out, f"Fig. 4: {label} per setting, mean over seeds ± standard error")
        self.md.add(f"{label.capitalize()} per setting: mean ± standard error over seeds (each seed: the mean over "
                    f"its evaluation episodes; a group averages its suites).")
        self.md.table(["model", *settings],
                      [[m, *(_mean_se_text(by_setting[s][m]) if m in by_setting[s] else "—" for s in settings)]
                       for m in models])
        rows = []
        for model in models:
            cells = []
            for setting in settings:
                values = by_setting[setting].get(model, [])
                if len(values) < 2:
                    cells.append("— (needs 2 seeds)")
                    continue
                ci = stratified_bootstrap_ci(values, iqm, self.options.bootstrap, seed=self.options.seed)
                cells.append(f"{_fmt(ci.estimate)} [{_fmt(ci.low)}, {_fmt(ci.high)}]")
            rows.append([model, *cells])
        self.md.add("IQM over seeds with a 95% stratified-bootstrap confidence interval (Agarwal et al. 2021).")
        self.md.table(["model", *settings], rows)

    def drops(self, scores: pd.DataFrame, models: Sequence[str], settings: Sequence[str]) -> None:
        rows = []
        for model in models:
            per_setting = {s: v for s in settings if (v := _scores_by_model(scores, s).get(model))}
            try:
                drops = relative_drops(per_setting, settings[0])
                rows.append([model, *(f"{100 * drops[s]:.0f}%" if s in drops else "—" for s in settings[1:])])
            except ValueError as error:
                rows.append([model, *([f"— ({error})"] * (len(settings) - 1))])
        self.md.add("(mean ID - mean OOD) / mean ID on normalised returns; above 100% is worse than random.")
        self.md.table(["model", *settings[1:]], rows)

    def _domain_latents(self, run: Run, env: str, setting: str) -> np.ndarray:
        members = reporting_settings(env)[setting]
        return np.concatenate([RunDir(run.path).load_samples(suite)["z"] for suite in members])

    def invariance(self, env: str, runs: Sequence[Run], models: Sequence[str], hard: str) -> dict[str, list[float]]:
        o = self.options
        rng = np.random.default_rng(o.seed)
        accuracy: dict[str, list[float]] = {}
        embeddings = {}
        for run in runs:
            if run.episodes is None:
                continue
            try:
                z_id, z_ood = self._domain_latents(run, env, ID_SUITE), self._domain_latents(run, env, hard)
                accuracy.setdefault(run.model, []).append(domain_classifier_accuracy(z_id, z_ood, seed=o.seed))
            except (ValueError, FileNotFoundError) as error:
                self.problems.append(f"{run.name}: latent invariance: {error}")
                continue
            if run.model not in embeddings:
                z_id, z_ood = (z[rng.choice(len(z), min(len(z), o.umap_points), replace=False)] for z in (z_id, z_ood))
                embeddings[run.model] = (umap_embedding(z_id, z_ood, seed=o.seed), len(z_id),
                                         f"seed {run.seed}; k-NN domain acc. {accuracy[run.model][-1]:.2f}")
        if not embeddings:
            raise ValueError("no evaluated run has latent samples of both ID and hard OOD")
        ordered = {m: embeddings[m] for m in models if m in embeddings}
        path = figures.plot_embeddings(ordered, self.figure_path(env, "fig6_umap"), ("ID", hard))
        self.md.figure(path, self.out, f"Fig. 6: UMAP (n_neighbors=20, min_dist=0.3) of z_t from ID (blue) and "
                                       f"{hard} (pink) observations, one seed per model")
        self.md.add("Overlap, measured: 5-fold cross-validated accuracy of a 5-NN classifier telling ID latents from "
                    f"{hard} ones (balanced; 0.5 = the domains overlap completely, 1.0 = fully separated).")
        self.md.table(["model", "domain-classifier accuracy"],
                      [[m, _mean_se_text(accuracy[m])] for m in models if m in accuracy])
        return accuracy

    def forgetting(self, env: str, runs: Sequence[Run], models: Sequence[str]) -> dict[str, list[float]]:
        before: dict[str, list[float]] = {}
        after: dict[str, list[float]] = {}
        for run in runs:
            record = (run.analysis or {}).get("forgetting")
            if record:
                before.setdefault(run.model, []).append(record["before"])
                after.setdefault(run.model, []).append(record["after"])
        if not after:
            raise ValueError("no evaluated run has a pre-trained encoder (forgetting is measured for those only)")
        ordered = [m for m in models if m in after]
        bars = {"before fine-tuning": {m: _mean_se(before[m]) for m in ordered},
                "after fine-tuning": {m: _mean_se(after[m]) for m in ordered}}
        path = figures.plot_bars(bars, "5-NN digit accuracy", self.figure_path(env, "fig5_forgetting"))
        self.md.figure(path, self.out, "Fig. 5: 5-NN classification accuracy (scikit-learn digits, 80/20 split) with "
                                       "the encoder's features before and after fine-tuning; mean ± SE over seeds")
        self.md.table(["model", "before", "after", "drop"],
                      [[m, _mean_se_text(before[m]), _mean_se_text(after[m]),
                        _fmt(float(np.mean(before[m]) - np.mean(after[m])))] for m in ordered])
        return after

    def objectness(self, runs: Sequence[Run], models: Sequence[str]) -> dict[str, list[float]]:
        scores: dict[str, list[float]] = {}
        frames = 0
        for run in runs:
            if run.episodes is None:
                continue
            samples = RunDir(run.path).load_samples(ID_SUITE)
            if "object_mask" not in samples or "saliency" not in samples:
                continue
            try:
                score, used = objectness(samples["saliency"], samples["object_mask"])
            except ValueError as error:
                self.problems.append(f"{run.name}: objectness: {error}")
                continue
            scores.setdefault(run.model, []).append(score)
            frames += used
        if not scores:
            raise ValueError("no evaluated run recorded object masks with its ID frames (only envs with masks, "
                             "e.g. tabletop, provide them)")
        self.md.add("Jaccard index between the encoder's saliency map (thresholded to keep 60% of its mass, as DINO) "
                    f"and the target object's mask from the simulator, over ID frames with the object in view "
                    f"({frames} frames in all).")
        self.md.table(["model", "Jaccard index"], [[m, _mean_se_text(scores[m])] for m in models if m in scores])
        return scores

    def correlations(self, scores: pd.DataFrame, hard: str, properties: dict[str, dict[str, list[float]]]) -> None:
        target = {m: float(np.mean(v)) for m, v in _scores_by_model(scores, hard).items()}
        columns = {name: {m: float(np.mean(v)) for m, v in values.items()} for name, values in properties.items()}
        columns["ID performance"] = {m: float(np.mean(v)) for m, v in _scores_by_model(scores, ID_SUITE).items()}
        results = property_correlations(columns, target)
        self.md.add(f"Pearson correlation across models (each averaged over its seeds) with the {hard} return.")
        self.md.table(["property", "Pearson r", "p", "models"],
                      [[name, _fmt(c.r, 2), _fmt(c.p_value, 2), c.models] if isinstance(c, Correlation)
                       else [name, f"— ({c})", "—", "—"] for name, c in results.items()])

    def attention(self, env: str, runs: Sequence[Run], models: Sequence[str], hard: str) -> None:
        frames = {}
        for model in models:
            for run in (r for r in runs if r.model == model and r.episodes is not None):
                entries = []
                for label, suite in ((ID_SUITE, ID_SUITE), (hard, reporting_settings(env)[hard][-1])):
                    samples = RunDir(run.path).load_samples(suite)
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
        path = figures.plot_attention(frames, self.figure_path(env, "fig7_saliency"))
        self.md.figure(path, self.out, f"Fig. 7: the encoder's saliency map (ViTs: last-block [CLS] attention "
                                       f"averaged over heads; others: gradient saliency) on an ID and a {hard} frame")


def _html(markdown_text: str, title: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>" \
           f"<body>{body}</body></html>"


def write_report(study_dir: str | Path, out_dir: str | Path | None = None,
                 options: ReportOptions | None = None) -> tuple[Path, Path]:
    """Read the study, write ``returns.csv`` in it and ``report.md`` + ``report.html`` (+ figures) in ``out_dir``
    (default ``STUDY_DIR/report``); returns the two report paths."""
    study = read_study(study_dir)
    out = Path(out_dir) if out_dir else study.path / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    study.write_table()
    text = Report(study, out, options or ReportOptions()).build()
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(text)
    html_path.write_text(_html(text, f"Study report: {study.path.name}"))
    return md_path, html_path

