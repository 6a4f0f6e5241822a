"""End to end through the command line: kill -9, Ctrl-C, resume, finish, evaluate."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from tests.conftest import TINY

pytestmark = pytest.mark.slow


@pytest.fixture
def start():
    """Starts `pvm-mbrl ARGS`; any process still running when the test ends (a failure) is killed."""
    processes = []

    def run(args, log):
        processes.append(launch(args, log))
        return processes[-1]

    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def launch(args, log):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # SIGINT starts ignored, as for a job started with `&`: training must still checkpoint and exit on it
    return subprocess.Popen([sys.executable, "-m", "pvm_mbrl.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                            env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def wait_for_status(run_dir, predicate, process, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        path = run_dir / "status.json"
        if path.exists():
            status = json.loads(path.read_text())
            if predicate(status):
                return status
        assert process.poll() is None, "training exited early"
        time.sleep(0.2)
    raise TimeoutError("status never reached")


def test_kill_interrupt_resume_and_evaluate(tmp_path, start):
    run_dir = tmp_path / "run"
    # steps=100000 cannot finish before the signals arrive, however slow the machine; the last run shortens
    # it (steps may change on resume) so that it finishes.
    args = ["train", *TINY, f"run_dir={run_dir}", "prefill=200", "train_ratio=8", "env.action_repeat=4",
            "checkpoint_every=200", "log_every=200", "eval_every=1000000", "eval_episodes=1"]
    log_path = tmp_path / "log.txt"
    with open(log_path, "w") as log:
        # 1. kill -9 after a checkpoint: the rerun resumes from that checkpoint
        process = start([*args, "steps=100000"], log)
        killed_at = wait_for_status(run_dir, lambda s: s["env_steps"] >= 400, process)["env_steps"]
        process.send_signal(signal.SIGKILL)
        process.wait()
        # 2. the same command resumes; Ctrl-C writes a checkpoint before exiting
        process = start([*args, "steps=100000"], log)
        wait_for_status(run_dir, lambda s: s["env_steps"] > killed_at, process)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130
        interrupted = json.loads((run_dir / "status.json").read_text())
        assert interrupted["state"] == "interrupted" and interrupted["env_steps"] > killed_at
        # 3. and once more, to the end
        final = interrupted["env_steps"] + 400
        process = start([*args, f"steps={final}"], log)
        assert process.wait(timeout=600) == 0
    output = log_path.read_text()
    resumed = [int(m.replace(",", "")) for m in re.findall(r"resuming .* at env step ([\d,]+)", output)]
    assert resumed == [killed_at, interrupted["env_steps"]], output
    assert json.loads((run_dir / "status.json").read_text())["state"] == "finished"

    result = subprocess.run([sys.executable, "-m", "pvm_mbrl.cli", "evaluate", str(run_dir), "--episodes", "1"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"at {final:,} env steps: mean return" in result.stdout
    assert (run_dir / "evaluations" / f"step{final}.json").exists()


def test_evaluate_without_checkpoint_names_what_is_missing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pvm_mbrl.cli", "evaluate", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "config.yaml is missing" in result.stderr
