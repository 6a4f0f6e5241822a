"""Suite evaluation on real envs with tiny trained runs: the tidy table, latent samples, and the whole pipeline
(train -> evaluate every suite -> report) on the table-top env, whose suites and object masks are real."""

import json
import re

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pvm_mbrl.analysis.report import write_report
from pvm_mbrl.analysis.report_options import ReportOptions
from pvm_mbrl.cli import main
from pvm_mbrl.evaluation.settings import EvaluationSettings, model_identity, suite_names
from pvm_mbrl.evaluation.suites import episode_seeds, evaluate_suites
from pvm_mbrl.rundir import TABLE_COLUMNS, RunDir
from pvm_mbrl.training.config import compose_config
from pvm_mbrl.training.loop import Trainer
from tests.conftest import TINY

SHORT = ["prefill=60", "train_ratio=16", "log_every=40", "eval_every=100000", "eval_episodes=1",
         "replay_capacity=2000"]


def test_every_suite_and_run_gets_the_same_fixed_episode_seeds():
    assert episode_seeds(3) == [2_000_000, 2_000_001, 2_000_002]
    assert episode_seeds(2, seed=1) == [2_100_000, 2_100_001]
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        episode_seeds(0)


def test_suites_per_family_and_model_labels():
    assert suite_names("dmc:cartpole-balance") == ["id", "easy_ood", "hard_ood"]
    assert suite_names("tabletop:pick_single_ycb") == ["id", "easy_ood", "hard_ood"]
    assert len(suite_names("driving:highway")) == 5
    assert model_identity(OmegaConf.create({"name": "cnn"})) == ("cnn", "scratch", "cnn")
    assert model_identity(OmegaConf.create({"name": "dinov2", "finetune": "partial"})) == (
        "dinov2", "partial", "dinov2 partial")


@pytest.fixture(scope="module")
def dmc_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("study") / "cnn" / "seed0"
    Trainer(compose_config([*TINY, *SHORT, f"run_dir={run}", "steps=240", "checkpoint_every=240",
                            "env.action_repeat=8"])).run()
    return run


@pytest.mark.slow
def test_dmc_run_is_evaluated_on_every_suite_into_the_tidy_table(dmc_run, capsys):
    study = dmc_run.parent.parent
    for _ in range(2):  # evaluating again replaces the run's rows instead of adding to them
        assert main(["evaluate", str(dmc_run), "--episodes", "1", "--samples", "20", "--sample-every", "3",
                     "--frames", "3", "--study", str(study)]) == 0
    printed = capsys.readouterr()
    assert "at 240 env steps: mean return" in printed.out
    # the progress line over all suites, at least after the last episode
    assert re.search(r"\[evaluate hard_ood\] 3/3 \(100%\) \| [\d.e+-]+ episodes/s \| ETA 0:00:00", printed.err)
    table = pd.read_csv(study / "returns.csv")
    assert list(table.columns) == list(TABLE_COLUMNS) and len(table) == 3
    assert set(table["run"]) == {"cnn/seed0"} and table["suite"].tolist() == ["id", "easy_ood", "hard_ood"]
    assert table["episode_seed"].tolist() == episode_seeds(1) * 3 and (table["length"] == 125).all()
    images = {}
    for suite in ("id", "easy_ood", "hard_ood"):
        samples = RunDir(dmc_run).load_samples(suite)
        assert samples["z"].shape == (20, 32 * 4)  # every 3rd of 125 steps, up to 20; stoch x classes of TINY
        assert np.allclose(samples["z"].sum(1), 32)  # one-hot latents: one class per variable
        assert samples["image"].shape == (3, 32, 32, 3) and samples["saliency"].shape == (3, 32, 32)
        assert "object_mask" not in samples
        images[suite] = samples["image"].astype(int)
    assert np.abs(images["hard_ood"] - images["id"]).mean() > 5  # the same episode, seen shifted
    summary = json.loads((dmc_run / "evaluations" / "step240.json").read_text())
    assert summary["suites"]["id"]["mean_return"] == pytest.approx(table["return"].iloc[0])


def test_evaluation_progress_shows_every_so_often_and_after_the_last_episode(capsys):
    from pvm_mbrl.evaluation.suites import EpisodeProgress

    progress = EpisodeProgress(total=4, every=3600)
    for suite in ("id", "id", "hard_ood", "hard_ood"):
        progress.episode_done(suite, {"return": 10.0})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("[evaluate hard_ood] 4/4 (100%) | ") and "return 10" in lines[0]
    every_time = EpisodeProgress(total=4, every=0)
    every_time.episode_done("id", {"return": 1.0})
    assert capsys.readouterr().err.startswith("[evaluate id] 1/4 (25%)")


@pytest.mark.slow
def test_unknown_suite_names_the_run_and_the_accepted_suites(dmc_run):
    with pytest.raises(ValueError, match=r"has no suite\(s\) fog; its suites: id, easy_ood, hard_ood"):
        evaluate_suites(dmc_run, EvaluationSettings(episodes=1), suites=["fog"])


@pytest.mark.slow
def test_tabletop_pipeline_train_evaluate_every_suite_and_report(tmp_path):
    """A real table-top run trained for 150 steps, evaluated on id / easy_ood / hard_ood with object masks."""
    run = tmp_path / "study" / "cnn" / "seed0"
    Trainer(compose_config([*TINY, *SHORT, "env=tabletop", "env.size=64", f"run_dir={run}", "steps=150",
                            "prefill=100", "checkpoint_every=150"])).run()
    summary = evaluate_suites(run, EvaluationSettings(episodes=1, samples=40, sample_every=1, frames=8),
                              log=lambda _: None)
    assert list(summary["suites"]) == ["id", "easy_ood", "hard_ood"] and summary["forgetting"] is None
    for suite in summary["suites"]:
        samples = RunDir(run).load_samples(suite)
        assert samples["z"].shape[0] == 40 and samples["object_mask"].shape == (8, 64, 64)
        assert samples["object_mask"].any() and samples["saliency"].max() == pytest.approx(1.0)
    table = pd.read_csv(run / "evaluations" / "episodes.csv")
    assert table["suite"].tolist() == ["id", "easy_ood", "hard_ood"] and (table["length"] == 50).all()
    md_path, _ = write_report(tmp_path / "study", options=ReportOptions(curve_key="eval/return", curve_window=100,
                                                                       threshold_window=100, bootstrap=1000))
    report = md_path.read_text()
    assert "Jaccard index between the encoder's saliency map" in report  # objectness from real masks
    jaccard = re.search(r"\| cnn \| ([0-9.]+) \(n=\d+\) \|", report.split("### Objectness")[1])
    assert jaccard and 0.0 <= float(jaccard.group(1)) <= 1.0
    for figure in ("fig4_returns", "fig6_umap", "fig7_saliency"):
        assert (md_path.parent / "figures" / f"tabletop-pick_single_ycb_{figure}.png").exists()
