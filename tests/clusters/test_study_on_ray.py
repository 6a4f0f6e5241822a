"""A tiny study through Hydra's Ray launcher on a private Ray head bound to 127.0.0.1: every run is a Ray task."""

from __future__ import annotations

import json
import os
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
