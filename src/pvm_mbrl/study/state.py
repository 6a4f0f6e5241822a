"""Each run's state, read from the study directory alone: it is the single source of truth.

Nothing about a run's state lives in the process that launched it, so a study can be killed at any moment, resumed
from another machine, or inspected by ``pvm-mbrl study status`` while SLURM or Ray jobs run. The files read:
the run's lock (held while a job works on it), ``config.yaml`` and ``checkpoint.pt`` and ``status.json`` (written by
the trainer), ``metrics.jsonl`` (progress between checkpoints) and ``job.json`` (the study job's record: attempts,
crash and evaluation settings).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pvm_mbrl.atomic import atomic_write_text
from pvm_mbrl.locks import LOCK_NAME, describe_holder, is_locked, lock_holder
from pvm_mbrl.training.checkpoint import CHECKPOINT_NAME
from pvm_mbrl.training.loop import resume_conflicts

JOB_FILE = "job.json"
JOB_LOG = "job.log"
PLAN_FILE = "study.yaml"


class RunState(str, Enum):
    PENDING = "pending"            # nothing written yet
    RUNNING = "running"            # a job holds the run's lock
    HALF_WRITTEN = "half-written"  # files but no checkpoint: a job died before its first one; restarted clean
    INTERRUPTED = "interrupted"    # a checkpoint short of the planned steps: resumed from it
    CRASHED = "crashed"            # the last attempt raised; retried (from its checkpoint) on the next launch
    TRAINED = "trained"            # trained, but not evaluated with the study's current evaluation settings
    FINISHED = "finished"          # trained and evaluated: skipped
    CONFLICT = "conflict"          # its saved config differs from the study's: left alone, never overwritten

    @property
    def action(self) -> str:
        return {"pending": "train + evaluate", "running": "skip (a job is on it)",
                "half-written": "restart clean + evaluate", "interrupted": "resume + evaluate",
                "crashed": "retry + evaluate", "trained": "evaluate", "finished": "skip",
                "conflict": "skip (settings changed)"}[self.value]

    @property
    def to_launch(self) -> bool:
        return self not in (RunState.RUNNING, RunState.FINISHED, RunState.CONFLICT)


@dataclass
class RunStatus:
    name: str
    state: RunState
    env_steps: int = 0
    total_steps: int = 0
    updated: float | None = None  # when the run last wrote progress (epoch seconds)
    detail: str = ""
    log_tail: list[str] = field(default_factory=list)


def read_json(path: Path) -> dict | None:
    """A JSON record, or None when missing or unreadable (records are written atomically; a foreign edit is not)."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def write_job_record(run_dir: Path, record: dict) -> None:
    atomic_write_text(run_dir / JOB_FILE, json.dumps(record, indent=1))


def log_tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a log (reading only its end, however long it grew)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]


def last_logged_step(run_dir: Path) -> int:
    """The env step of the last complete line of ``metrics.jsonl`` (progress between checkpoints), or 0."""
    for line in reversed(log_tail(run_dir / "metrics.jsonl", 5)):
        try:
            return int(json.loads(line)["step"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return 0


def evaluation_done(record: dict | None, evaluation: dict, env_steps: int) -> str | None:
    """None when the run's evaluation matches ``evaluation`` at ``env_steps``, else why it must be redone."""
    if not record or "evaluation" not in record:
        return "not evaluated yet"
    if record["evaluation"] != evaluation:
        changed = sorted(k for k in set(evaluation) | set(record["evaluation"])
                         if evaluation.get(k) != record["evaluation"].get(k))
        return f"evaluation settings changed ({', '.join(changed)})"
    if record.get("evaluated_env_steps") != env_steps:
        return f"evaluated at {record.get('evaluated_env_steps')} env steps, trained to {env_steps}"
    return None


def has_run_files(run_dir: Path) -> bool:
    """Whether training wrote anything in ``run_dir`` (the lock and the job's own record and log do not count)."""
    return run_dir.is_dir() and any(p.name not in (LOCK_NAME, JOB_FILE, JOB_LOG) for p in run_dir.iterdir())


def run_status(run_dir: Path, cfg: DictConfig, evaluation: dict) -> RunStatus:
    """The state of the run in ``run_dir`` that the study plans with config ``cfg``."""
    name, total = run_dir.name, int(cfg.steps)
    if not has_run_files(run_dir):
        return RunStatus(name, RunState.PENDING, total_steps=total)
    record = read_json(run_dir / JOB_FILE) or {}
    trainer_status = read_json(run_dir / "status.json") or {}
    env_steps = max(int(trainer_status.get("env_steps", 0)), last_logged_step(run_dir))
    updated = max((p.stat().st_mtime for p in (run_dir / "metrics.jsonl", run_dir / "status.json",
                                                run_dir / JOB_FILE) if p.exists()), default=None)
    status = RunStatus(name, RunState.FINISHED, env_steps, total, updated)
    if is_locked(run_dir):
        status.state, status.detail = RunState.RUNNING, describe_holder(lock_holder(run_dir / LOCK_NAME))
        return status
    config_path, checkpoint = run_dir / "config.yaml", run_dir / CHECKPOINT_NAME
    if config_path.exists():
        try:
            saved = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
        except Exception as error:  # noqa: BLE001 - any unreadable config makes the directory half-written
            status.state, status.detail = RunState.HALF_WRITTEN, f"config.yaml unreadable ({error})"
            return status
        conflicts = resume_conflicts(saved, OmegaConf.to_container(cfg, resolve=True))
        if conflicts:
            status.state = RunState.CONFLICT
            status.detail = (f"its config differs from the study's ({'; '.join(conflicts[:4])}); move it away or "
                             f"use another study directory")
            return status
    if record.get("state") == "crashed":
        status.state, status.detail = RunState.CRASHED, record.get("error", "")
        status.log_tail = log_tail(run_dir / JOB_LOG, 10)  # only crashes show it: not read on every poll
        return status
    if not (config_path.exists() and checkpoint.exists()):
        missing = [p.name for p in (config_path, checkpoint) if not p.exists()]
        status.state = RunState.HALF_WRITTEN
        status.detail = f"no {' and no '.join(missing)}: stopped before its first checkpoint"
        return status
    trained_steps = int(trainer_status.get("env_steps", 0))
    if trainer_status.get("state") != "finished" or trained_steps < total:
        status.state = RunState.INTERRUPTED
        status.detail = f"checkpoint at {trained_steps:,} env steps ({trainer_status.get('state', 'no status.json')})"
        return status
    reason = evaluation_done(record, evaluation, trained_steps)
    if reason:
        status.state, status.detail = RunState.TRAINED, reason
    return status


def format_age(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds}s ago"
    return f"{seconds // 60}m ago" if seconds < 7200 else f"{seconds // 3600}h ago"


def format_status_table(statuses: list[RunStatus], now: float | None = None) -> str:
    """A plain-text table: run, state, progress, last update, next action and detail."""
    now = now or time.time()
    rows = [("run", "state", "progress", "updated", "next", "detail")]
    for s in statuses:
        progress = f"{s.env_steps:,}/{s.total_steps:,} ({100 * s.env_steps / max(s.total_steps, 1):.0f}%)"
        rows.append((s.name, s.state.value, progress, format_age(now - s.updated) if s.updated else "-",
                     s.state.action, s.detail))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
                     for r in rows)


def summary_line(statuses: list[RunStatus]) -> str:
    """``2/4 finished, 1 running (x 1,500/3,000), 1 pending``."""
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state.value] = counts.get(s.state.value, 0) + 1
    parts = [f"{counts.pop('finished', 0)}/{len(statuses)} finished"]
    running = [s for s in statuses if s.state is RunState.RUNNING]
    if running:
        counts.pop("running")
        parts.append(f"{len(running)} running (" + ", ".join(f"{s.name} {s.env_steps:,}/{s.total_steps:,}"
                                                             for s in running) + ")")
    parts += [f"{n} {state}" for state, n in counts.items()]
    return ", ".join(parts)


def write_plan(study_dir: Path, plan_dict: dict) -> None:
    atomic_write_text(study_dir / PLAN_FILE, OmegaConf.to_yaml(OmegaConf.create(plan_dict)))


def read_plan_dict(study_dir: Path) -> dict:
    path = Path(study_dir) / PLAN_FILE
    if not path.exists():
        raise ValueError(f"{study_dir} is not a study directory (no {PLAN_FILE}); start one with "
                         f"`pvm-mbrl study PRESET --dir {study_dir}`")
    return OmegaConf.to_container(OmegaConf.load(path))
