"""Failures through the command line, in fresh processes: a diverging run exits 2 with its last good checkpoint
kept; SIGTERM (or SIGUSR2) checkpoints and exits 128 + its number."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tests.conftest import TINY

from pvm_mbrl.checkpoint import load_checkpoint, nonfinite_tensors

pytestmark = pytest.mark.slow

# Updates start at env step 96 (24 agent steps of 4: replay can then sample batch 2 x length 8 = 16 sequences of
# 8 + 1 context steps); the checkpoints at 40 and 80 come before them.
ARGS = [*TINY, "env.action_repeat=4", "train_ratio=16", "checkpoint_every=40", "log_every=40",
        "eval_every=1000000", "eval_episodes=1"]


def cli(*args):
    return [sys.executable, "-m", "pvm_mbrl.cli", *args]


def test_a_diverging_run_exits_2_naming_the_terms_and_keeps_a_finite_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    done = subprocess.run(cli("train", *ARGS, f"run_dir={run_dir}", "steps=2000", "loss_scales.value=1e39"),
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pvm-mbrl: error: training diverged: 10 consecutive updates" in done.stderr
    assert "loss terms: value (10 of them)" in done.stderr and "Traceback" not in done.stderr
    assert f"last good checkpoint is kept ({run_dir}/checkpoint.pt, at env step 80)" in done.stderr
    assert f"[train] checkpoint at env step 80: {run_dir}/checkpoint.pt" in done.stdout
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["counters"]["env_steps"] == 80 and nonfinite_tensors(state) == []
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and status["reason"].startswith("training diverged")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGUSR2], ids=["kill", "slurm time-limit warning"])
def test_a_stop_signal_writes_a_checkpoint_and_exits_128_plus_its_number(tmp_path, stop):
    run_dir = tmp_path / "run"
    with open(tmp_path / "log.txt", "w") as log:
        process = subprocess.Popen(cli("train", *ARGS, f"run_dir={run_dir}", "steps=100000"), stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.time() + 300
            while not (run_dir / "status.json").exists():
                assert process.poll() is None and time.time() < deadline, "no checkpoint before the deadline"
                time.sleep(0.2)
            process.send_signal(stop)
            assert process.wait(timeout=120) == 128 + stop
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted"
    output = (tmp_path / "log.txt").read_text()
    assert f"[train] interrupted at env step {status['env_steps']:,}: writing checkpoint" in output
    assert f"[train] checkpoint at env step {status['env_steps']:,}" in output
