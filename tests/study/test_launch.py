"""Launching guards that need no training: one launch per study directory at a time."""

from pvm_mbrl.cli import main
from tests.study.conftest import TINY_STUDY
from tests.test_locks import hold_in_subprocess


def test_two_launches_of_one_study_cannot_run_at_once(tmp_path, capsys):
    study = tmp_path / "study"
    holder = hold_in_subprocess(study, "study quick launcher")
    try:
        assert main(["study", "quick", *TINY_STUDY, "--dir", str(study)]) == 2
        err = capsys.readouterr().err
        assert f"is in use by pid {holder.pid}" in err and "study quick launcher" in err
        assert not (study / "study.yaml").exists()
    finally:
        holder.kill()
        holder.wait()


def test_status_of_a_directory_that_is_no_study(tmp_path, capsys):
    assert main(["study", "status", str(tmp_path)]) == 2
    assert "is not a study directory (no study.yaml)" in capsys.readouterr().err


def test_joining_a_ray_cluster_drops_the_launchers_object_store_setting():
    from pvm_mbrl.study.launch import with_launcher_defaults

    joining = ["hydra/launcher=ray", "hydra.launcher.ray.init.address=10.0.0.1:6379"]
    assert with_launcher_defaults(joining) == [*joining, "+hydra.launcher.ray.init.object_store_memory=null"]
    assert with_launcher_defaults(["hydra/launcher=ray"]) == ["hydra/launcher=ray"]  # a local Ray of its own
    assert with_launcher_defaults(["hydra/launcher=joblib"]) == ["hydra/launcher=joblib"]


def test_the_joblib_workers_end_before_the_report():
    import os

    import psutil
    from joblib.externals.loky import get_reusable_executor

    from pvm_mbrl.study.launch import release_local_workers

    workers = set(get_reusable_executor(max_workers=2).map(lambda _: os.getpid(), range(4)))
    assert workers and all(psutil.pid_exists(pid) for pid in workers)
    release_local_workers()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in workers)


def test_a_job_does_not_start_once_its_study_is_asked_to_stop(tmp_path, capsys):
    import signal

    from pvm_mbrl.study.job import execute_run
    from pvm_mbrl.study.plan import make_plan
    from pvm_mbrl.study.state import clear_stop_request, request_stop, stop_requested

    plan, _ = make_plan("quick", [*TINY_STUDY, "seed=0"], tmp_path)
    request_stop(tmp_path, signal.SIGTERM)
    assert stop_requested(tmp_path)
    assert execute_run(tmp_path, plan, plan.runs[0]) == {"state": "stopped"}
    assert not (tmp_path / plan.runs[0].name).exists()  # nothing written: the run stays pending
    assert "not started, the study is stopping" in capsys.readouterr().out
    clear_stop_request(tmp_path)
    assert not stop_requested(tmp_path)


def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path):
    """`pvm-mbrl study dmc-shift --dry-run | head -1`: the pipe's reader has gone before the output is written."""
    import signal
    import subprocess
    import sys

    command = [sys.executable, "-m", "pvm_mbrl.cli", "study", "dmc-shift", "--dry-run", "--dir", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    assert process.wait(timeout=120) == 128 + signal.SIGPIPE
    assert process.stderr.read() == b""
