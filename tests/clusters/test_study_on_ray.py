"""A tiny study through Hydra's Ray launcher on a private Ray head bound to 127.0.0.1: every run is a Ray task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clusters.ray_head import local_ray_head
from tests.study.conftest import TINY_STUDY

pytestmark = pytest.mark.cluster


def test_tiny_study_runs_as_ray_tasks(tmp_path: Path) -> None:
    study = tmp_path / "study"
    with local_ray_head(tmp_path / "ray", cpus=2) as head:
        env = {**os.environ, **head.env, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "pvm_mbrl.cli", "study", "quick", *TINY_STUDY, "seed=0,1", "steps=800",
                   "hydra/launcher=ray", f"hydra.launcher.ray.init.address={head.address}",
                   "+hydra.launcher.ray.remote.num_cpus=1", "--dir", str(study), "--progress-every", "10"]
        driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        output = driver.communicate(timeout=900)[0]
        assert driver.returncode == 0, output[-4000:]
    assert "Ray Launcher is launching 2 jobs" in output
    assert f"'address': '{head.address}'" in output  # the launcher joined this head, not a cluster of its own
    for seed in (0, 1):
        run = study / f"dmc__cnn__seed{seed}"
        record = json.loads((run / "job.json").read_text())
        assert record["state"] == "finished"
        assert record["pid"] != driver.pid  # the job ran in a Ray worker, not in the launching process
        assert json.loads((run / "status.json").read_text())["env_steps"] == 800
    assert "dmc__cnn__seed1" in (study / "report" / "report.md").read_text()


def test_an_interrupted_ray_study_checkpoints_its_running_tasks_and_starts_no_other(tmp_path: Path) -> None:
    """SIGINT to the launcher alone (`kill -INT PID`; Ctrl-C, with a head started apart): a Ray task gets none of
    the launcher's signals (and would end with the launcher's process), so the tasks stop on the study's stop
    request, with a checkpoint; the same command resumes them. (SIGTERM is Ray's: `ray.init` makes it exit the
    driver, whose tasks then end as if killed, keeping their last periodic checkpoints.)"""
    from pvm_mbrl.rundir import JOB_FILE, JOB_LOG
    from tests.study.conftest import job, trainer_status, wait_until

    study = tmp_path / "study"
    runs = [study / f"dmc__cnn__seed{seed}" for seed in range(3)]
    with local_ray_head(tmp_path / "ray", cpus=2) as head:
        env = {**os.environ, **head.env, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "pvm_mbrl.cli", "study", "quick", *TINY_STUDY, "seed=0,1,2", "steps=8000",
                   "hydra/launcher=ray", f"hydra.launcher.ray.init.address={head.address}",
                   "+hydra.launcher.ray.remote.num_cpus=1", "--dir", str(study), "--no-report"]
        with open(tmp_path / "first.log", "w") as log:
            driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
            wait_until(lambda: all(trainer_status(run).get("env_steps", 0) >= 800 for run in runs[:2]), driver)
            driver.send_signal(signal.SIGINT)
            status = driver.wait(timeout=180)
        output = (tmp_path / "first.log").read_text()
        assert status == 130, output[-4000:]
        assert "stopped by signal 2" in output and not (study / ".stop-requested").exists()
        for run in runs[:2]:
            stopped = trainer_status(run)
            assert stopped["state"] == "interrupted" and 800 <= stopped["env_steps"] < 8000, output[-4000:]
            log = (run / JOB_LOG).read_text()
            assert f"interrupted at env step {stopped['env_steps']:,}: writing checkpoint" in log
            assert job(run)["state"] == "interrupted"
        assert not (runs[2] / JOB_FILE).exists()  # queued behind the two: it found the stop request and did not start

        rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        assert rerun.returncode == 0, rerun.stdout[-4000:]
    for run in runs[:2]:
        assert f"resuming {run} at env step" in (run / JOB_LOG).read_text()
    assert all(job(run)["state"] == "finished" for run in runs)
