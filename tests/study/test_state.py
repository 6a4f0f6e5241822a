"""Run states read from the study directory alone, for every state a run can be left in."""

import json
import time

import pytest

from pvm_mbrl.locks import directory_lock
from pvm_mbrl.rundir import JOB_FILE
from pvm_mbrl.study.state import (
    RunState,
    RunStatus,
    evaluation_done,
    format_status_table,
    run_status,
    summary_line,
)
from pvm_mbrl.training.config import compose_config, to_yaml
from tests.conftest import TINY

EVALUATION = {"episodes": 2, "seed": 0}


@pytest.fixture
def run(tmp_path):
    run_dir = tmp_path / "study" / "r"
    cfg = compose_config([*TINY, f"run_dir={run_dir}", "steps=400"])
    return run_dir, cfg


def write(run_dir, cfg, *, checkpoint=True, status=None, job=None, config=True):
    run_dir.mkdir(parents=True, exist_ok=True)
    if config:
        (run_dir / "config.yaml").write_text(to_yaml(cfg))
    if checkpoint:
        (run_dir / "checkpoint.pt").write_bytes(b"state reads presence only")
    if status:
        (run_dir / "status.json").write_text(json.dumps(status))
    if job:
        (run_dir / JOB_FILE).write_text(json.dumps(job))


def state(run) -> RunStatus:
    run_dir, cfg = run
    return run_status(run_dir, cfg, EVALUATION)


def test_pending_and_half_written(run):
    run_dir, cfg = run
    assert state(run).state is RunState.PENDING
    run_dir.mkdir(parents=True)
    (run_dir / JOB_FILE).write_text("{}")  # the job's own record is not training output
    assert state(run).state is RunState.PENDING
    write(run_dir, cfg, checkpoint=False)
    status = state(run)
    assert status.state is RunState.HALF_WRITTEN and "no checkpoint.pt" in status.detail
    (run_dir / "config.yaml").write_text("env: [unclosed")
    assert state(run).state is RunState.HALF_WRITTEN


def test_interrupted_trained_finished(run):
    run_dir, cfg = run
    write(run_dir, cfg, status={"state": "interrupted", "env_steps": 200, "total_steps": 400})
    status = state(run)
    assert (status.state, status.env_steps, status.total_steps) == (RunState.INTERRUPTED, 200, 400)
    assert status.detail == "checkpoint at 200 env steps (interrupted)"
    # the trainer said "running" at its last checkpoint, and no process holds the lock: killed (SIGKILL, OOM, a node)
    write(run_dir, cfg, status={"state": "running", "env_steps": 200, "total_steps": 400})
    assert state(run).detail == "checkpoint at 200 env steps (its process died while training: the steps after it " \
                                "are redone)"
    # finished at fewer steps than the study now plans (steps were raised): resumed
    write(run_dir, cfg, status={"state": "finished", "env_steps": 300})
    assert state(run).state is RunState.INTERRUPTED
    write(run_dir, cfg, status={"state": "finished", "env_steps": 400})
    assert state(run).state is RunState.TRAINED and state(run).detail == "not evaluated yet"
    write(run_dir, cfg, status={"state": "finished", "env_steps": 400},
          job={"state": "finished", "evaluation": EVALUATION, "evaluated_env_steps": 400})
    assert state(run).state is RunState.FINISHED
    write(run_dir, cfg, job={"state": "finished", "evaluation": {"episodes": 5, "seed": 0}, "evaluated_env_steps": 400})
    status = state(run)
    assert status.state is RunState.TRAINED and "evaluation settings changed (episodes)" in status.detail


def test_a_finished_run_needs_no_checkpoint_but_anything_else_restarts_without_one(run):
    run_dir, cfg = run
    evaluated = {"state": "finished", "evaluation": EVALUATION, "evaluated_env_steps": 400}
    write(run_dir, cfg, checkpoint=False, status={"state": "finished", "env_steps": 400}, job=evaluated)
    status = state(run)
    assert status.state is RunState.FINISHED and "records only (no checkpoint.pt" in status.detail
    # evaluated with other settings: nothing to evaluate from, so it is trained again
    write(run_dir, cfg, checkpoint=False, job={**evaluated, "evaluation": {"episodes": 5, "seed": 0}})
    status = state(run)
    assert status.state is RunState.HALF_WRITTEN and "nothing to evaluate from" in status.detail
    # the study now plans more steps than were trained: no checkpoint to resume from
    write(run_dir, cfg, checkpoint=False, status={"state": "finished", "env_steps": 300}, job=evaluated)
    status = state(run)
    assert status.state is RunState.HALF_WRITTEN and "stopped before its first checkpoint" in status.detail


def test_progress_between_checkpoints_comes_from_metrics(run):
    run_dir, cfg = run
    write(run_dir, cfg, status={"state": "running", "env_steps": 100})
    (run_dir / "metrics.jsonl").write_text('{"step": 100}\n{"step": 250}\n{"step": 3')  # half-written last line
    assert state(run).env_steps == 250


def test_crashed_conflict_running(run):
    run_dir, cfg = run
    write(run_dir, cfg, status={"state": "running", "env_steps": 100},
          job={"state": "crashed", "error": "RuntimeError: boom"})
    assert (state(run).state, state(run).detail) == (RunState.CRASHED, "RuntimeError: boom")
    changed = compose_config([*TINY, f"run_dir={run_dir}", "steps=400", "optim.lr=0.1"])
    status = run_status(run_dir, changed, EVALUATION)
    assert status.state is RunState.CONFLICT and f"optim.lr: {cfg.optim.lr!r} -> 0.1" in status.detail
    moved = compose_config([*TINY, f"run_dir={run_dir.parent / 'elsewhere'}", "steps=400"])
    assert run_status(run_dir, moved, EVALUATION).state is RunState.CRASHED  # a moved directory is no conflict
    with directory_lock(run_dir, "test"):
        status = state(run)
        assert status.state is RunState.RUNNING and "(test, since" in status.detail


def test_a_running_runs_speed_and_when_it_will_have_trained(run):
    run_dir, cfg = run
    write(run_dir, cfg, status={"state": "running", "env_steps": 100})
    (run_dir / "metrics.jsonl").write_text('{"step": 100, "speed/env_steps_per_s": 2.0}\n{"step": 100, '
                                           '"eval/return": 5.0}\n{"step": 200, "speed/env_steps_per_s": 0.5}\n')
    assert state(run).training_eta is None  # not running: no speed is claimed
    with directory_lock(run_dir, "test"):
        status = state(run)
    assert (status.env_steps_per_s, status.training_eta) == (0.5, 400.0)  # (400 - 200) steps at the last speed
    row = format_status_table([status]).splitlines()[1]
    assert "0.5 env-steps/s, trained in ~0:06:40; pid" in row
    status.env_steps = 400
    assert "evaluating; pid" in format_status_table([status]).splitlines()[1]


def test_evaluation_done_by_hand():
    assert evaluation_done(None, EVALUATION, 10) == "not evaluated yet"
    assert evaluation_done({"evaluation": EVALUATION, "evaluated_env_steps": 10}, EVALUATION, 10) is None
    assert evaluation_done({"evaluation": EVALUATION, "evaluated_env_steps": 5}, EVALUATION, 10) == \
        "evaluated at 5 env steps, trained to 10"
    assert evaluation_done({"evaluation": {"episodes": 2}, "evaluated_env_steps": 10}, EVALUATION, 10) == \
        "evaluation settings changed (seed)"


def test_status_table_and_summary():
    now = time.time()
    statuses = [RunStatus("a", RunState.FINISHED, 400, 400, now - 30), RunStatus("bb", RunState.RUNNING, 100, 400),
                RunStatus("c", RunState.CRASHED, 0, 400, detail="ValueError: x")]
    assert summary_line(statuses) == "1/3 finished, 1 running (bb 100/400), 1 crashed"
    table = format_status_table(statuses, now).splitlines()
    assert table[0].split() == ["run", "state", "progress", "updated", "next", "detail"]
    assert table[1].split()[:5] == ["a", "finished", "400/400", "(100%)", "30s"]
    assert table[3].split()[-4:] == ["+", "evaluate", "ValueError:", "x"]
