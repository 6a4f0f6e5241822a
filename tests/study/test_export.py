"""``study export``: finished runs' records without checkpoints or replay, a study directory of its own."""

import json

import pytest

from pvm_mbrl.cli import main
from pvm_mbrl.locks import directory_lock
from pvm_mbrl.rundir import JOB_FILE
from pvm_mbrl.study.export import export_study
from pvm_mbrl.study.launch import status_report
from pvm_mbrl.study.plan import make_plan
from pvm_mbrl.study.state import write_plan
from pvm_mbrl.training.config import to_yaml

EVALUATED = {"state": "finished", "evaluated_env_steps": 400}


@pytest.fixture
def study(tmp_path):
    """A two-run study: seed 0 finished (checkpoint, replay, evaluation), seed 1 interrupted."""
    study_dir = tmp_path / "study"
    plan, configs = make_plan("quick", ["encoder=cnn", "seed=0,1", "steps=400"], study_dir)
    write_plan(study_dir, plan.to_dict())
    for spec, (status, job) in zip(plan.runs, [({"state": "finished", "env_steps": 400},
                                                {**EVALUATED, "evaluation": plan.evaluation}),
                                               ({"state": "interrupted", "env_steps": 200}, {"state": "running"})],
                                   strict=True):
        run_dir = study_dir / spec.name
        (run_dir / "replay").mkdir(parents=True)
        (run_dir / "replay" / "chunk-0.npz").write_bytes(b"0" * 1000)
        (run_dir / "evaluations").mkdir()
        (run_dir / "evaluations" / "episodes.csv").write_text("suite,return\nid,1.0\n")
        (run_dir / "config.yaml").write_text(to_yaml(configs[spec.name]))
        (run_dir / "checkpoint.pt").write_bytes(b"weights")
        (run_dir / "checkpoint.prev.pt").write_bytes(b"the checkpoint before")
        (run_dir / "metrics.jsonl").write_text('{"step": 200}\n')
        (run_dir / "status.json").write_text(json.dumps(status))
        (run_dir / JOB_FILE).write_text(json.dumps(job))
    return study_dir, [spec.name for spec in plan.runs]


def test_export_copies_finished_runs_records_only_and_they_read_as_finished(study, tmp_path, capsys):
    study_dir, (finished, interrupted) = study
    out = tmp_path / "published"
    assert main(["study", "export", str(study_dir), str(out)]) == 0
    assert f"exported 1 finished run(s) to {out}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(["returns.csv", "study.yaml", finished])
    copied = out / finished
    assert sorted(p.name for p in copied.iterdir()) == sorted(
        ["config.yaml", "evaluations", "job.json", "metrics.jsonl", "status.json"])
    assert (copied / "evaluations" / "episodes.csv").read_text() == "suite,return\nid,1.0\n"
    listing = status_report(out)
    assert "1/2 finished, 1 pending" in listing and "records only (no checkpoint.pt" in listing
    # the original is untouched and still resumable
    assert (study_dir / finished / "checkpoint.pt").exists() and (study_dir / interrupted / "replay").is_dir()


def test_export_again_replaces_runs_and_refuses_what_would_mix_studies(study, tmp_path):
    study_dir, (finished, _) = study
    out = tmp_path / "published"
    export_study(study_dir, out)
    (out / "returns.csv").write_text("a table from an older export\n")
    (study_dir / finished / "evaluations" / "episodes.csv").write_text("suite,return\nid,2.0\n")
    (out / finished / "stale.txt").write_text("from an older export")
    assert export_study(study_dir, out) == [finished]
    assert not (out / finished / "stale.txt").exists()
    assert (out / "returns.csv").read_text().startswith("run,encoder,")  # rebuilt from the exported runs
    assert (out / finished / "evaluations" / "episodes.csv").read_text().endswith("2.0\n")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="a-file is a file; name a directory"):
        export_study(study_dir, tmp_path / "a-file")
    with pytest.raises(ValueError, match="onto itself"):
        export_study(study_dir, study_dir)
    other = tmp_path / "other"
    plan, _ = make_plan("quick", ["encoder=cnn", "seed=5"], other)
    write_plan(other, plan.to_dict())
    with pytest.raises(ValueError, match=f"{other} holds another study's study.yaml"):
        export_study(study_dir, other)
    with directory_lock(out / finished, "a test job"), pytest.raises(ValueError, match=f"working on {finished}"):
        export_study(study_dir, out)
    with pytest.raises(ValueError, match="is not a study directory"):
        export_study(tmp_path / "nowhere", out)
