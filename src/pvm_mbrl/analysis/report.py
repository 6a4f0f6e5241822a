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


def write_report(study_dir: str | Path, out_dir: str | Path | None = None,
                 options: ReportOptions | None = None) -> tuple[Path, Path]:
    """Read the study, write ``returns.csv`` in it and ``report.md`` + ``report.html`` (+ figures) in ``out_dir``
    (default ``STUDY_DIR/report``); returns the two report paths."""
    from pvm_mbrl.analysis.report_render import html, render_report
    from pvm_mbrl.analysis.report_results import study_results
    from pvm_mbrl.analysis.study import read_study

    study = read_study(study_dir)
    out = Path(out_dir) if out_dir else study.path / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    study.write_table()
    options = options or ReportOptions()
    text = render_report(study, study_results(study, options), out, options)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(text)
    html_path.write_text(html(text, f"Study report: {study.path.name}"))
    return md_path, html_path
