"""Reading a study directory and writing its report, on a synthetic study whose numbers are known by hand
(tests/analysis/synthetic_study.py), clean and with broken runs."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from tests.analysis.synthetic_study import EPISODES, MODELS, SCORES, SEEDS, make_study

from pvm_mbrl import cli
from pvm_mbrl.analysis.report_options import ReportOptions
from pvm_mbrl.analysis.report_results import reporting_settings, run_scores
from pvm_mbrl.analysis.study import read_study
from pvm_mbrl.cli import main
from pvm_mbrl.evaluation import settings as evaluation_settings
from pvm_mbrl.study.plan import make_plan
from pvm_mbrl.study.state import write_plan

ENV = "tabletop:pick_single_ycb"


@pytest.fixture(scope="module")
def clean_study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("study"))


def break_study(root):
    """A copy of the study with the bad inputs a real study directory gets."""
    (root / "half").mkdir()
    (root / "half" / "metrics.jsonl").write_text('{"step": 10, "episode/return": 1.0}\n')  # config never written
    cnn2 = root / "cnn" / "seed2"
    (cnn2 / "checkpoint.pt").unlink()
    shutil.rmtree(cnn2 / "evaluations")
    episodes = root / "efficientnet_lite0_full" / "seed1" / "evaluations" / "episodes.csv"
    table = pd.read_csv(episodes)
    table[table["suite"] != "hard_ood"].to_csv(episodes, index=False)
    with open(root / "mobilenet_v2_partial" / "seed0" / "metrics.jsonl", "a") as metrics:
        metrics.write('{"step": 101000, "episode/ret')
    shutil.copytree(root / "cnn" / "seed0", root / "rerun" / "cnn_seed0")  # the same seed again, elsewhere
    (root / "cnn" / "seed1" / "status.json").write_text(json.dumps({"state": "running", "env_steps": 50000,
                                                                    "total_steps": 100000}))
    metrics = root / "efficientnet_lite0_frozen" / "seed0" / "metrics.jsonl"
    lines = metrics.read_bytes().splitlines(keepends=True)
    metrics.write_bytes(b"".join(lines[:3]) + b'{"step": \xff\xfe 7}\n' + b"".join(lines[3:]))  # not UTF-8
    return root


def test_a_clean_study_reads_without_problems_and_scores_are_the_known_ones(clean_study):
    study = read_study(clean_study)
    assert study.problems == [] and len(study.runs) == len(MODELS) * len(SEEDS)
    assert study.models(ENV) == list(MODELS)  # CNN first, then full, frozen, partial by encoder
    table = study.table()
    assert len(table) == len(MODELS) * len(SEEDS) * 3 * EPISODES
    assert list(table.columns[:7]) == ["run", "encoder", "finetune", "model", "env", "seed", "suite"]
    table = run_scores(study, ENV)
    scores, normalised = table.frame, table.normalised
    assert normalised and reporting_settings(ENV) == {s: [s] for s in ("id", "easy_ood", "hard_ood")}
    means = scores.groupby(["model", "setting"])["score"].mean()
    for model, per_suite in SCORES.items():
        for suite, expected in per_suite.items():
            assert means[model, suite] == pytest.approx(expected)
    seeds = scores[(scores["model"] == "cnn") & (scores["setting"] == "id")].sort_values("seed")["score"]
    assert np.allclose(seeds, [0.79, 0.80, 0.81])


def test_driving_reports_its_groups_and_a_family_without_suites_only_id(monkeypatch):
    assert reporting_settings("driving:highway") == {
        "id": ["id"], "weak": ["weak_high_light", "weak_noisy_low_light"],
        "strong": ["strong_low_light", "strong_noisy_low_light"]}
    assert reporting_settings("dmc:cartpole-balance") == {
        "id": ["id"], "easy_ood": ["easy_ood"], "hard_ood": ["hard_ood"]}
    monkeypatch.setattr(evaluation_settings, "suite_families", lambda: ["driving", "tabletop"])  # as if dmc had none
    assert reporting_settings("dmc:cartpole-balance") == {"id": ["id"]}


def test_bad_runs_are_named_with_what_is_missing_and_the_rest_is_kept(clean_study, tmp_path):
    root = break_study(shutil.copytree(clean_study, tmp_path / "broken"))
    study = read_study(root)
    problems = "\n".join(study.problems)
    assert "half: config.yaml is missing (has metrics.jsonl)" in problems
    assert "cnn/seed2: no checkpoint.pt and no evaluation" in problems
    assert "efficientnet_lite0_full/seed1: not evaluated on suite(s) hard_ood" in problems
    assert "mobilenet_v2_partial/seed0: metrics.jsonl: its last line is half-written" in problems
    assert "efficientnet_lite0_frozen/seed0: metrics.jsonl: line(s) 4 do not decode" in problems
    assert "cnn/seed1: training is running at 50000 of 100000 env steps" in problems
    assert ("rerun/cnn_seed0: the same env, model and seed (0) as cnn/seed0; left out so that no seed counts twice"
            in problems)
    assert len(study.runs) == 12  # every run with a config is kept for what it has, each seed once
    scores = run_scores(study, ENV).frame
    assert len(scores[(scores["model"] == "cnn") & (scores["setting"] == "id")]) == 2
    assert len(scores[(scores["model"] == "efficientnet_lite0 full") & (scores["setting"] == "hard_ood")]) == 2
    assert len(scores[(scores["model"] == "efficientnet_lite0 full") & (scores["setting"] == "id")]) == 3
    curve = study.runs[[r.name for r in study.runs].index("mobilenet_v2_partial/seed0")].curve("episode/return")
    assert curve[0][-1] == 100_000  # the half-written record is left out


def test_a_study_without_runs_is_refused_with_a_clear_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no usable run directory under" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_report_command_starts_from_the_study_settings_or_report_options(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "write_report", lambda study_dir, out, options: seen.append(options) or ("md", "html"))
    assert main(["report", str(tmp_path)]) == 0 and seen[-1] == ReportOptions()
    assert main(["report", str(tmp_path), "--curve-window", "5", "--bootstrap", "7"]) == 0
    assert seen[-1] == ReportOptions(curve_window=5, bootstrap=7)
    # a study directory: its preset's report settings and notes, with what the command line gives on top
    study_dir = tmp_path / "study"
    plan, _ = make_plan("dmc-shift", [], study_dir)
    write_plan(study_dir, plan.to_dict())
    assert main(["report", str(study_dir), "--bootstrap", "7"]) == 0
    options = seen[-1]
    assert (options.curve_window, options.threshold_window, options.loss_window, options.bootstrap) == (
        5000, 2000, 1000, 7)
    assert options.notes[0].startswith("Study preset `dmc-shift`: CNN vs EfficientNet-Lite0")


def test_the_command_line_imports_the_report_settings_without_the_analyses():
    code = "import sys, pvm_mbrl.cli; print(sorted({'torch', 'pandas', 'matplotlib'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.slow
def test_report_of_a_study_with_broken_runs_has_every_table_and_figure(clean_study, tmp_path, capsys):
    root = break_study(shutil.copytree(clean_study, tmp_path / "broken"))
    docs = tmp_path / "docs" / "results"  # a .md path: figures into docs/results/broken/, linked from broken.md
    assert main(["report", str(root), "--out", str(docs / "broken.md"), "--curve-window", "5000",
                 "--threshold-window", "5000", "--permutations", "500", "--bootstrap", "2000"]) == 0
    assert "[report] wrote" in capsys.readouterr().out
    report = (docs / "broken.md").read_text()
    figures = sorted(p.name for p in (docs / "broken").iterdir())
    assert [f.split("_fig")[1].split("_")[0] for f in figures] == ["2", "3", "4", "5", "6", "7"]
    for name in figures:
        assert f"](broken/{name})" in report
    for heading in ("Table III", "Permutation tests", "IQM", "Relative drop", "domain-classifier accuracy",
                    "Forgetting", "Jaccard index", "Table IV", "Problems found"):
        assert heading in report, heading
    assert "half: config.yaml is missing" in report and "not evaluated on suite(s) hard_ood" in report
    # seeds 0 and 1 of the CNN are evaluated: ID 0.795, easy 0.745, hard -0.055 -> 6.3% and 106.9%; seed by seed
    # (.79, .74, -.06) and (.8, .75, -.05): 6.33% and 6.25%, 107.6% and 106.25%, the bootstrap's extremes.
    assert "| cnn | 6% [6%, 6%] | 107% [106%, 108%] |" in report
    # (0.6 - 0.58) / 0.6, (0.6 - 0.5) / 0.6; seed by seed .02 / .61 to .02 / .59 and .1 / .61 to .1 / .59
    assert "| efficientnet_lite0 frozen | 3% [3%, 3%] | 17% [16%, 17%] |" in report
    assert "### Headline: ID vs OOD returns" in report and "### Permutation tests on returns" in report
    assert "<table>" in (docs / "broken.html").read_text()
    assert len(pd.read_csv(root / "returns.csv")) == (12 - 1) * 3 * EPISODES - EPISODES
