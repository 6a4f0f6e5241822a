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

The numbers are computed by ``report_results`` (pure functions returning dataclasses) and shown by
``report_render`` (Markdown, HTML, figures). The report's settings, ``ReportOptions``, are defined once in
``report_options`` (the ``report`` command line and study presets start from them); this module stays light to
import.
"""

from __future__ import annotations

from pathlib import Path

from pvm_mbrl.analysis.report_options import ReportOptions

REPORT_DIR = "report"


def write_report(study_dir: str | Path, out: str | Path | None = None,
                 options: ReportOptions | None = None) -> tuple[Path, Path]:
    """Read the study, write ``returns.csv`` in it and the report; returns the Markdown and HTML paths.

    ``out`` is a directory (default ``STUDY_DIR/report``) that gets ``report.md``, ``report.html`` and
    ``figures/``, or a ``.md`` path, e.g. ``docs/results/dmc-shift.md``: the HTML goes beside it and the figures
    into the folder of its name without the suffix (``docs/results/dmc-shift/``), so the report can live in a
    documentation tree.
    """
    from pvm_mbrl.analysis.report_render import html, render_report
    from pvm_mbrl.analysis.report_results import study_results
    from pvm_mbrl.analysis.study import read_study

    study = read_study(study_dir)
    target = Path(out) if out else study.path / REPORT_DIR
    if target.suffix == ".md":
        md_path, figures_dir = target, target.with_suffix("")
    else:
        md_path, figures_dir = target / "report.md", target / "figures"
    md_path.parent.mkdir(parents=True, exist_ok=True)
    study.write_table()
    options = options or ReportOptions()
    text = render_report(study, study_results(study, options), md_path.parent, options, figures_dir)
    html_path = md_path.with_suffix(".html")
    md_path.write_text(text)
    html_path.write_text(html(text, f"Study report: {study.path.name}"))
    return md_path, html_path
