"""Launching guards that need no training: one launch per study directory at a time."""

import subprocess
import sys

from pvm_mbrl.cli import main
from tests.study.conftest import TINY_STUDY

HOLD = "import sys, time; from pvm_mbrl.locks import directory_lock\n" \
       "with directory_lock(sys.argv[1], 'study quick launcher'):\n    print('held', flush=True); time.sleep(60)"


def test_two_launches_of_one_study_cannot_run_at_once(tmp_path, capsys):
    study = tmp_path / "study"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(study)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
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
