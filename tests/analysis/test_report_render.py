"""The report's presentation (analysis/report_render.py) of results built by hand: text of tables, sections that
are not available, and the order of the problems listed at the top."""

from pathlib import Path

import numpy as np

from pvm_mbrl.analysis.measures import ThresholdSummary
from pvm_mbrl.analysis.report_options import ReportOptions
from pvm_mbrl.analysis.report_render import LEARNING_TITLE, ReportRenderer, fmt, mean_se_text
from pvm_mbrl.analysis.report_results import (
    DropsResult,
    EnvResults,
    LearningResult,
    MeanSE,
    Outcome,
    ReturnsResult,
    ReturnTestsResult,
)
from pvm_mbrl.analysis.statistics import ConfidenceInterval, PermutationTestResult
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
    drops = DropsResult(True, ["hard"], {"a": {"hard": 0.754}, "b": "undefined", "c": {"hard": 0.5}},
                        {"a": {"hard": "needs 2 seeds"}, "b": {"hard": "undefined"},
                         "c": {"hard": ConfidenceInterval(0.5, 0.254, 0.9)}})
    report.section("Drops", Outcome(drops), report.drops)
    assert report.md.lines[:3] == ["### Title", "", "_Not available: why not_"]
    assert report.problems[-2:] == ["found first", "Title: why not"]
    problems = list(report.problems)
    report.section("Masks", Outcome(error="no env records masks", applicable=False), lambda result: None)
    assert "_Not applicable: no env records masks_" in report.md.lines[-2:] and report.problems == problems
    assert "| a | 75% |" in report.md.lines and "| b | — (undefined) |" in report.md.lines
    assert "| c | 50% [25%, 90%] |" in report.md.lines
    assert "- No interval for a (hard): needs 2 seeds" in report.md.lines
    assert any("on normalised returns" in line and "above 100% is worse than random" in line
               for line in report.md.lines)
    raw = DropsResult(False, ["hard"], {"a": {"hard": 1.5}}, {"a": {"hard": ConfidenceInterval(1.5, 1.2, 1.8)}})
    report.section("Raw drops", Outcome(raw), report.drops)
    assert any("on mean returns (no normalisation constants)" in line and "the mean OOD return is below 0" in line
               for line in report.md.lines[-6:])
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


def test_headline_gathers_iqm_drop_and_tests_against_the_first_model(tmp_path):
    report = renderer(tmp_path)
    ci = ConfidenceInterval
    returns = ReturnsResult(True, ["id", "hard"], ["cnn", "pvm", "new", "one"],
                            {"id": {"cnn": MeanSE(0.8, 0.1, 3), "pvm": MeanSE(0.6, 0.1, 3),
                                    "new": MeanSE(0.7, np.nan, 1), "one": MeanSE(0.4, np.nan, 1)},
                             "hard": {"cnn": MeanSE(0.1, 0.1, 3), "pvm": MeanSE(0.5, 0.1, 3),
                                      "one": MeanSE(0.3, np.nan, 1)}},
                            {"cnn": {"id": ci(0.8, 0.7, 0.9), "hard": ci(0.1, 0.0, 0.2)},
                             "pvm": {"id": ci(0.6, 0.5, 0.7), "hard": ci(0.5, 0.4, 0.6)},
                             "new": {"id": None, "hard": None}, "one": {"id": None, "hard": None}})
    drops = DropsResult(True, ["hard"], {"cnn": {"hard": 0.875}, "pvm": {"hard": 1 / 6}, "new": "not evaluated in hard",
                                   "one": {"hard": 0.25}},
                        {"cnn": {"hard": ci(0.875, 0.75, 1.0)}, "pvm": {"hard": ci(1 / 6, 0.0, 0.3)},
                         "new": {"hard": "needs 2 seeds"}, "one": {"hard": "needs 2 seeds"}})
    column = "drop id -> hard"
    tests = ReturnTestsResult(True, ["id", "hard", column], {
        ("cnn", "pvm"): {"id": PermutationTestResult(0.2, 0.3, 20), "hard": PermutationTestResult(0.4, 0.1, 20),
                         column: PermutationTestResult(0.7, 0.1, 20)},
        ("cnn", "new"): {"id": PermutationTestResult(0.1, 0.5, 4), "hard": "not evaluated", column: "not evaluated"},
        ("pvm", "new"): {}})
    absent = Outcome(error="unused")
    report.headline(EnvResults("toy:t", ["id", "hard"], absent, absent, Outcome(returns), absent, Outcome(drops),
                               Outcome(tests)))
    lines = report.md.lines
    assert lines[0] == "### Headline: ID vs OOD returns"
    assert ("| model | id IQM [95% CI] | hard IQM [95% CI] | drop id -> hard [95% CI] | vs cnn: hard p "
            "| vs cnn: drop p |") in lines
    assert "| cnn | 0.8 [0.7, 0.9] | 0.1 [0, 0.2] | 88% [75%, 100%] | — | — |" in lines  # no test against itself
    assert "| pvm | 0.6 [0.5, 0.7] | 0.5 [0.4, 0.6] | 17% [0%, 30%] | 0.1 | 0.1 |" in lines
    assert "| new | 0.7 (n=1) | — | — | — | — |" in lines  # one seed: its score; not evaluated in hard
    assert "| one | 0.4 (n=1) | 0.3 (n=1) | 25% | — | — |" in lines  # one seed: its drop, no interval
    assert any("p cannot fall below 2 / C(2n, n)" in line and "0.1 for three" in line for line in lines)
    assert lines[-2].startswith("With 3 seeds, a 95% percentile-bootstrap interval runs from the lowest seed")


def test_return_tests_show_statistic_and_p_or_why_not(tmp_path):
    report = renderer(tmp_path)
    report.return_tests(ReturnTestsResult(True, ["id", "drop id -> hard"], {
        ("a", "b"): {"id": PermutationTestResult(0.25, 0.1, 20), "drop id -> hard": "not evaluated"}}))
    assert "| a | b | 0.25 (p=0.1) | — (not evaluated) |" in report.md.lines
    report.return_tests(ReturnTestsResult(True, ["id"], {}))
    assert report.md.lines[-2] == "_Permutation tests need two models._"
