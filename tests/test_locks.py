"""Directory locks: one writer at a time across processes, re-entrant in one, released when the holder dies."""

import os
import signal
import subprocess
import sys
import time

import pytest

from pvm_mbrl.locks import LOCK_NAME, LockedError, directory_lock, is_locked

HOLD = "import sys, time; from pvm_mbrl.locks import directory_lock\n" \
       "with directory_lock(sys.argv[1], sys.argv[2]):\n    print('held', flush=True); time.sleep(60)"


def hold_in_subprocess(directory, purpose: str = "holder") -> subprocess.Popen:
    """Another process holding ``directory``'s lock (for ``purpose``) until killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), purpose], stdout=subprocess.PIPE,
                               text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_lock_is_exclusive_across_processes_and_names_the_holder(tmp_path):
    process = hold_in_subprocess(tmp_path)
    try:
        assert is_locked(tmp_path)
        with pytest.raises(LockedError, match=rf"in use by pid {process.pid} on .* \(holder, since"), \
                directory_lock(tmp_path, "second"):
            pass
    finally:
        process.send_signal(signal.SIGKILL)  # the kernel drops a dead holder's lock: nothing to clean up
        process.wait()
    assert not is_locked(tmp_path)
    with directory_lock(tmp_path, "after"):
        assert is_locked(tmp_path)


def test_lock_is_reentrant_within_a_process(tmp_path):
    with directory_lock(tmp_path, "outer"), directory_lock(tmp_path, "inner"):
        assert is_locked(tmp_path)
    assert not is_locked(tmp_path)
    assert (tmp_path / LOCK_NAME).exists()
    assert f'"pid": {os.getpid()}' in (tmp_path / LOCK_NAME).read_text()


def test_training_refuses_a_run_directory_in_use(tmp_path):
    from pvm_mbrl.training.config import compose_config
    from pvm_mbrl.training.loop import train
    from tests.conftest import TINY

    run_dir = tmp_path / "run"
    process = hold_in_subprocess(run_dir)
    try:
        start = time.time()
        with pytest.raises(LockedError, match="wait for it to finish"):
            train(compose_config([*TINY, f"run_dir={run_dir}"]))
        assert time.time() - start < 5 and not (run_dir / "config.yaml").exists()
    finally:
        process.kill()
        process.wait()
