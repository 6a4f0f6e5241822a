"""A tiny study through Hydra's submitit_slurm launcher on the private SLURM cluster: every run is a SLURM job."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pvm_mbrl.rundir import JOB_LOG
from tests.clusters.slurm import SlurmCluster, local_slurm
from tests.study.conftest import TINY_STUDY, job, trainer_status, wait_until

pytestmark = pytest.mark.cluster


def slurm_study_command(cluster: SlurmCluster, study: Path, *overrides: str) -> list[str]:
    """The tiny study with ``overrides``, every run a SLURM job on ``cluster``."""
    return [sys.executable, "-m", "pvm_mbrl.cli", "study", "quick", *TINY_STUDY, *overrides,
            "hydra/launcher=submitit_slurm", f"hydra.launcher.partition={cluster.partition}",
            "hydra.launcher.mem_gb=2", "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=15",
            "--dir", str(study), "--progress-every", "10"]


def test_tiny_study_runs_as_slurm_jobs_and_sacct_knows_them(tmp_path: Path) -> None:
    study = tmp_path / "study"
    with local_slurm(tmp_path / "slurm") as cluster:
        env = {**os.environ, **cluster.env, "PYTHONUNBUFFERED": "1"}
        command = slurm_study_command(cluster, study, "seed=0,1", "steps=800")
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-4000:]
        # submitit wrote one folder per SLURM job; sacct (through slurmdbd) knows how each ended
        job_ids = sorted({p.name for p in study.glob(".launcher/*/.submitit/*") if re.fullmatch(r"\d+_\d+", p.name)})
        assert len(job_ids) == 2, output[-4000:]
        assert [cluster.wait_job_state(job_id) for job_id in job_ids] == ["COMPLETED", "COMPLETED"]
    for seed in (0, 1):
        run = study / f"dmc__cnn__seed{seed}"
        record = json.loads((run / "job.json").read_text())
        assert record["state"] == "finished" and record["pid"] != os.getpid()
        assert json.loads((run / "status.json").read_text())["env_steps"] == 800
    assert "dmc__cnn__seed1" in (study / "report" / "report.md").read_text()


@pytest.mark.parametrize("how", ["scancel", "scancel --signal=USR2", "SIGKILL"],
                         ids=["scancel", "time-limit warning", "killed"])
def test_a_signalled_slurm_job_resumes_from_its_checkpoint_on_the_next_launch(tmp_path: Path, how: str) -> None:
    """`scancel JOBID`: SLURM sends SIGTERM to the job's step, then SIGKILL after KillWait (5 s here); SIGUSR2 is what
    a job gets from submitit's `--signal` before its time limit. Either way training writes a checkpoint where it is
    and the job returns its record to the launcher. A job killed outright (as by the kernel's OOM killer) loses what
    it did since its last periodic checkpoint, and its launcher gives up waiting, saying so. The same command then
    resumes the run."""
    study = tmp_path / "study"
    run = study / "dmc__cnn__seed0"
    with local_slurm(tmp_path / "slurm") as cluster:
        env = {**os.environ, **cluster.env, "PYTHONUNBUFFERED": "1"}
        command = slurm_study_command(cluster, study, "seed=0", "steps=4000")
        with open(tmp_path / "first.log", "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            wait_until(lambda: trainer_status(run).get("env_steps", 0) >= 800, process)
            job_ids = {p.name for p in study.glob(".launcher/*/.submitit/*") if re.fullmatch(r"\d+", p.name)}
            assert len(job_ids) == 1
            if how == "SIGKILL":
                os.kill(job(run)["pid"], signal.SIGKILL)
            else:
                cluster.run(*how.split(), *job_ids)
            status = process.wait(timeout=300)
        output = (tmp_path / "first.log").read_text()
        assert status == 1 and "Traceback" not in output and not (study / "report").exists(), output[-4000:]
        stopped = trainer_status(run)
        if how == "SIGKILL":
            assert re.search(r"\[study\] the launcher lost a job \(UncompletedJobError: Job \d+ .* has not produced",
                             output), output[-4000:]
            assert stopped["state"] == "running" and stopped["env_steps"] in (400, 800, 1200)  # periodic ones
        else:
            assert "[study] done: 0/1 finished, 1 interrupted" in output, output[-4000:]
            assert stopped["state"] == "interrupted" and 800 <= stopped["env_steps"] < 4000
            assert job(run)["state"] == "interrupted"

        resumed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming {run} at env step {stopped['env_steps']:,}" in (run / JOB_LOG).read_text()
    assert job(run)["state"] == "finished" and job(run)["attempts"] == 2
    assert (study / "report" / "report.md").exists()
