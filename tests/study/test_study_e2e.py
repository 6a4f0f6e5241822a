"""Whole studies through the command line: kill and resume, stop by signal, crashes, re-evaluation, half-written
runs, joblib."""

import os
import signal
import subprocess
import sys

import pytest

from pvm_mbrl.cli import main
from pvm_mbrl.rundir import JOB_FILE, JOB_LOG
from tests.study.conftest import TINY_STUDY, job, trainer_status, wait_until

pytestmark = pytest.mark.slow
SEQUENTIAL = "hydra/launcher=basic"


def study_command(study_dir, *overrides):
    """The tiny study, one run after another in the study's process unless ``overrides`` choose a launcher (quick's
    own is two joblib workers)."""
    launcher = [] if any(o.startswith("hydra/launcher=") for o in overrides) else [SEQUENTIAL]
    return [sys.executable, "-m", "pvm_mbrl.cli", "study", "quick", *TINY_STUDY, *launcher, *overrides, "--dir",
            str(study_dir), "--progress-every", "2"]


def test_killed_study_resumes_without_redoing_finished_runs(tmp_path):
    study = tmp_path / "study"
    first, second = study / "dmc__cnn__seed0", study / "dmc__cnn__seed1"
    command = study_command(study, "seed=0,1", "steps=2400")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_until(lambda: (first / JOB_FILE).exists() and job(first)["state"] == "finished"
                   and trainer_status(second).get("env_steps", 0) >= 400, process)
        process.send_signal(signal.SIGKILL)  # no chance to clean up: the study directory must tell the story
        process.wait()
    killed = trainer_status(second)
    assert killed["state"] != "finished" and killed["env_steps"] < 2400
    finished_files = {name: (first / name).stat().st_mtime_ns for name in ("metrics.jsonl", "checkpoint.pt")}

    listing = subprocess.run([sys.executable, "-m", "pvm_mbrl.cli", "study", "status", str(study)],
                             capture_output=True, text=True, check=True).stdout
    assert "1/2 finished" in listing and "interrupted" in listing

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    output = rerun.stdout + rerun.stderr
    assert "launching 1 run(s): dmc__cnn__seed1" in output
    assert "elapsed: 1/2 finished, 1 running (dmc__cnn__seed1 " in output  # the study's periodic progress line
    assert {name: (first / name).stat().st_mtime_ns for name in finished_files} == finished_files
    assert job(first)["attempts"] == 1 and job(second)["attempts"] == 2
    assert f"resuming {second} at env step {killed['env_steps']:,}" in (second / JOB_LOG).read_text()
    assert trainer_status(second) == {**trainer_status(second), "state": "finished", "env_steps": 2400}
    report = study / "report" / "report.md"
    text = report.read_text()
    assert "dmc__cnn__seed0" in text and "dmc__cnn__seed1" in text and "too small for conclusions" in text
    assert list((study / "report" / "figures").glob("*.png"))
    # a third run finds nothing to do
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "launching" not in again.stdout
    # its export (records only: no checkpoints, no replay) is a study of its own: nothing to train, the same table
    published = tmp_path / "published"
    assert main(["study", "export", str(study), str(published)]) == 0
    assert not list(published.rglob("checkpoint.pt")) and not list(published.rglob("replay"))
    assert (published / "returns.csv").read_text() == (study / "returns.csv").read_text()  # both runs' episodes
    from_export = subprocess.run(study_command(published, "seed=0,1", "steps=2400"), capture_output=True, text=True,
                                 env=env, timeout=300)
    assert from_export.returncode == 0 and "launching" not in from_export.stdout, from_export.stderr[-3000:]
    assert (published / "returns.csv").read_text() == (study / "returns.csv").read_text()
    assert "dmc__cnn__seed1" in (published / "report" / "report.md").read_text()


@pytest.mark.parametrize("how", ["ctrl-c in the terminal", "sigterm to the launcher"])
def test_a_signalled_study_checkpoints_its_running_runs_and_starts_no_other(tmp_path, how):
    import psutil

    study = tmp_path / "study"
    runs = [study / f"dmc__cnn__seed{seed}" for seed in range(3)]
    command = study_command(study, "seed=0,1,2", "steps=4000", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(tmp_path / "first.log", "w") as log:  # a session of its own, as a terminal's foreground job has
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_until(lambda: all(trainer_status(run).get("env_steps", 0) >= 800 for run in runs[:2]), process)
        workers = psutil.Process(process.pid).children(recursive=True)
        if how == "ctrl-c in the terminal":  # the terminal signals the whole foreground process group
            os.killpg(process.pid, signal.SIGINT)
        else:  # `kill PID`: only the launcher gets it
            process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=120)
    output = (tmp_path / "first.log").read_text()
    assert status == (130 if how == "ctrl-c in the terminal" else 143), output[-3000:]
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, "worker processes outlived the study"
    stopped = {run.name: trainer_status(run) for run in runs[:2]}
    # each run wrote a checkpoint where the signal found it: at or past its last periodic one (800; the signal may
    # land right after that one was written), before the end
    assert output.count("] interrupted at env step ") == 2, output
    for run in runs[:2]:
        steps = stopped[run.name]["env_steps"]
        assert stopped[run.name]["state"] == "interrupted" and 800 <= steps < 4000, output
        assert f"interrupted at env step {steps:,}: writing checkpoint" in output
        assert f"checkpoint at env step {steps:,}: {run}" in output
        assert job(run)["state"] == "interrupted"
    assert not (runs[2] / JOB_FILE).exists() and "dmc__cnn__seed2: not started, the study is stopping" in output
    assert "stopped by signal" in output and not (study / ".stop-requested").exists()

    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    for run in runs[:2]:
        assert f"resuming {run} at env step {stopped[run.name]['env_steps']:,}" in (run / JOB_LOG).read_text()
    assert all(job(run)["state"] == "finished" for run in runs)


def test_crash_is_reported_and_does_not_stop_the_others_then_only_changed_evaluations_rerun(tmp_path, capsys):
    study_file = tmp_path / "mine.yaml"
    study_file.write_text("base: quick\ndescription: a CNN and a DINOv2 whose weights are missing\n"
                          "grid: {encoder: [dinov2, cnn], finetune: [frozen]}\n"
                          "rules: [{when: {encoder: dinov2}, set: [encoder.weights=/nonexistent/dinov2]}]\n")
    study = tmp_path / "study"
    args = ["study", str(study_file), *[o for o in TINY_STUDY if o != "encoder=cnn"], "steps=800", SEQUENTIAL]
    assert main([*args, "--dir", str(study)]) == 1  # not every run finished
    out = capsys.readouterr()
    cnn, dino = study / "dmc__cnn__seed0", study / "dmc__dinov2-frozen__seed0"
    assert job(cnn)["state"] == "finished"
    record = job(dino)
    assert record["state"] == "crashed" and "/nonexistent/dinov2" in record["error"]
    assert "Traceback" in record["traceback"] and any("CRASHED" in line for line in record["log_tail"])
    assert "dmc__dinov2-frozen__seed0 crashed:" in out.out
    assert "dmc__dinov2-frozen__seed0: its study job crashed (" in (study / "report" / "report.md").read_text()
    assert main(["study", "status", str(study)]) == 0
    listing = capsys.readouterr().out
    assert "1/2 finished, 1 crashed" in listing and "last lines of dmc__dinov2-frozen__seed0/job.log" in listing

    metrics = (cnn / "metrics.jsonl").stat().st_mtime_ns
    assert main([*args, "evaluation.episodes=2", "--dir", str(study)]) == 1
    out = capsys.readouterr().out
    assert "dmc__cnn__seed0: evaluating on every suite (evaluation settings changed (episodes))" in out
    assert "dmc__cnn__seed0: training" not in out  # evaluation only: the training files are untouched
    assert (cnn / "metrics.jsonl").stat().st_mtime_ns == metrics
    episodes = (cnn / "evaluations" / "episodes.csv").read_text().strip().splitlines()
    assert len(episodes) == 1 + 3 * 2  # header + dmc's 3 suites x 2 episodes
    assert job(dino)["attempts"] == 2 and job(dino)["state"] == "crashed"


def test_half_written_run_is_restarted_clean_with_joblib_workers(tmp_path):
    study = tmp_path / "study"
    half = study / "dmc__cnn__seed1"
    half.mkdir(parents=True)
    (half / "metrics.jsonl").write_text('{"step": 400, "loss/rec": 1.0}\n{"st')  # died before its first checkpoint
    result = subprocess.run(study_command(study, "seed=0,1", "steps=800", "hydra/launcher=joblib",
                                          "hydra.launcher.n_jobs=2"), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "half-written" in output and "Joblib" in output
    discarded = list((study / ".discarded").iterdir())
    assert len(discarded) == 1 and discarded[0].name.startswith("dmc__cnn__seed1-")
    assert (discarded[0] / "metrics.jsonl").read_text().endswith('{"st')
    for run in ("dmc__cnn__seed0", "dmc__cnn__seed1"):
        assert job(study / run)["state"] == "finished" and trainer_status(study / run)["env_steps"] == 800
    # the report does not count the discarded copy as a run
    assert ".discarded" not in (study / "report" / "report.md").read_text()
