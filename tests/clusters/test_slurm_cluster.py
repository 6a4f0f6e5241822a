"""The private SLURM test cluster works end to end: submitit jobs run, and sacct (slurmdbd) knows their outcome."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import submitit

from tests.clusters import slurm
from tests.clusters.slurm import DAEMONS, SlurmCluster, SlurmNotInstalledError, local_slurm, pids_alive

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    # One cluster for the submission tests: starting one takes a few seconds, and they do not disturb each other.
    with local_slurm(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture
def cluster(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    # submitit runs sbatch/sacct/scancel as subprocesses of this process: they need SLURM_CONF in our environment.
    for key, value in slurm_cluster.env.items():
        monkeypatch.setenv(key, value)
    return slurm_cluster


def _executor(cluster: SlurmCluster, folder: Path) -> submitit.AutoExecutor:
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    # Memory is bookkeeping only here; ask little so several jobs fit the node at once.
    executor.update_parameters(slurm_partition=cluster.partition, mem_gb=1, cpus_per_task=1, timeout_min=5)
    return executor


def test_job_result_and_completed_state(cluster: SlurmCluster, tmp_path: Path) -> None:
    def square_plus(x: int, y: int) -> int:
        return x * x + y

    job = _executor(cluster, tmp_path / "submitit").submit(square_plus, 7, 1)
    assert job.result() == 50  # waits for the result pickle the job writes
    assert cluster.wait_job_state(job.job_id) == "COMPLETED"


def test_failing_job_reported_failed(cluster: SlurmCluster, tmp_path: Path) -> None:
    def fail() -> None:
        raise ValueError("failing on purpose")

    job = _executor(cluster, tmp_path / "submitit").submit(fail)
    with pytest.raises(submitit.core.utils.FailedJobError, match="failing on purpose"):
        job.result()
    assert cluster.wait_job_state(job.job_id) == "FAILED"


def test_no_process_left_after_exit(tmp_path: Path) -> None:
    """Leave a job running on purpose: the context manager must stop it and every daemon, by PID."""
    with local_slurm(tmp_path / "slurm") as cluster:
        out = cluster.run("sbatch", "--parsable", "--mem=100M", f"--output={tmp_path}/sleep.out",
                          "--wrap", "srun /bin/sleep 300").stdout
        job_id = out.strip().split(";")[0]
        deadline = time.monotonic() + 30
        while cluster.run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip() != "RUNNING":
            assert time.monotonic() < deadline, f"job {job_id} did not start\n{cluster.log_tails()}"
            time.sleep(0.25)
        daemon_pids = set(cluster.pids.values())
        assert set(cluster.pids) == set(DAEMONS)
        assert sorted(pids_alive(daemon_pids)) == sorted(daemon_pids)  # all running while inside
        conf = str(cluster.conf_path)

    assert pids_alive(daemon_pids) == []
    # Nor the job's processes (slurmstepd puts them in sessions of their own; they carry SLURM_CONF).
    left = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("SLURM_CONF") == conf and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(proc.pid)
        except psutil.Error:
            continue
    assert left == []


def test_failed_start_stops_what_it_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A startup that fails halfway (here: right after MariaDB is up) leaves no daemon behind."""
    started: list[int] = []
    real_start, real_mariadb = slurm._Launcher.start, slurm._start_mariadb

    def recording_start(self: slurm._Launcher, name: str, cmd: list[str], uts: bool = False):
        proc = real_start(self, name, cmd, uts)
        started.append(proc.pid)
        return proc

    def mariadb_then_fail(*args: object, **kwargs: object) -> None:
        real_mariadb(*args, **kwargs)
        raise RuntimeError("startup failed on purpose")

    monkeypatch.setattr(slurm._Launcher, "start", recording_start)
    monkeypatch.setattr(slurm, "_start_mariadb", mariadb_then_fail)
    with pytest.raises(RuntimeError, match="on purpose"), local_slurm(tmp_path / "slurm"):
        pass
    assert len(started) == 2  # munged, mariadbd
    assert pids_alive(started) == []


def test_missing_binaries_say_run_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slurm, "REQUIRED_BINARIES", ("no-such-slurm-binary",))
    with pytest.raises(SlurmNotInstalledError, match="scripts/setup.sh"), local_slurm(tmp_path / "slurm"):
        pass
