"""The report's presentation (analysis/report_render.py) of results built by hand: text of tables, sections that
are not available, and the order of the problems listed at the top."""

from pathlib import Path

import numpy as np

from pvm_mbrl.analysis.measures import ThresholdSummary
from pvm_mbrl.analysis.report_options import ReportOptions
from pvm_mbrl.analysis.report_render import LEARNING_TITLE, ReportRenderer, fmt, mean_se_text
from pvm_mbrl.analysis.report_results import DropsResult, LearningResult, MeanSE, Outcome
from pvm_mbrl.analysis.study import Study


def renderer(tmp_path: Path) -> ReportRenderer:
    return ReportRenderer(Study(tmp_path, [], ["a run problem"]), tmp_path, ReportOptions())


def test_numbers_are_shown_with_significant_digits():
    assert fmt(0.123456) == "0.123" and fmt(1e-12) == "0" and fmt(float("nan")) == "—" and fmt(2.345, 2) == "2.3"
    assert mean_se_text(MeanSE(0.5, 0.0125, 3)) == "0.5 ± 0.013 (n=3)"
    assert mean_se_text(MeanSE(0.5, float("nan"), 1)) == "0.5 (n=1)"


def test_a_section_states_why_it_is_not_available_after_its_problems(tmp_path):
    report = renderer(tmp_path)
    report.section("Title", Outcome(error="why not", problems=("found first",)), lambda result: None)
    report.section("Drops", Outcome(DropsResult(["hard"], {"a": {"hard": 0.754}, "b": "undefined"})), report.drops)
    assert report.md.lines[:3] == ["### Title", "", "_Not available: why not_"]
    assert "| a | 75% |" in report.md.lines and "| b | — (undefined) |" in report.md.lines
    assert report.problems == ["a run problem", "found first", "Title: why not"]


def test_learning_shows_thresholds_then_why_the_permutation_tests_are_missing(tmp_path):
    report = renderer(tmp_path)
    steps = np.array([0.0, 10.0])
    result = LearningResult(False, {"a": (steps, steps, 0 * steps)}, {"a": ThresholdSummary(1500, 1000, 2000, {})},
                            None, tests_error="no common steps", problems=("seed problem",))
    report.section(LEARNING_TITLE, Outcome(result, problems=result.problems), lambda r: report.learning("toy:t", r))
    text = "\n".join(report.md.lines)
    assert "| a | 1,500 (1,000 – 2,000) | 0 |" in text
    assert (tmp_path / "figures" / "toy-t_fig2_learning_curves.png").exists()
    assert text.endswith("_Not available: no common steps_\n")
    assert report.problems == ["a run problem", "seed problem", f"{LEARNING_TITLE}: no common steps"]
