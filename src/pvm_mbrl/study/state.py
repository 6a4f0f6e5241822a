"""Each run's state, read from the study directory alone: it is the single source of truth.

Nothing about a run's state lives in the process that launched it, so a study can be killed at any moment, resumed
from another machine, or inspected by ``pvm-mbrl study status`` while SLURM or Ray jobs run. What is read (through
``pvm_mbrl.rundir``): the run's lock (held while a job works on it), its config, checkpoint and trainer status, its
metrics (progress between checkpoints) and the study job's record (attempts, crash and evaluation settings). Nothing
here imports torch.
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
from pvm_mbrl.rundir import RunDir, log_tail
from pvm_mbrl.training.config import resume_conflicts
from pvm_mbrl.training.logger import format_duration

PLAN_FILE = "study.yaml"
STOP_FILE = ".stop-requested"  # written by a signalled launcher: jobs that have not started yet do not start


class RunState(str, Enum):
    PENDING = "pending"            # nothing written yet
    RUNNING = "running"            # a job holds the run's lock
    HALF_WRITTEN = "half-written"  # files but no checkpoint: a job died before its first one; restarted clean
    INTERRUPTED = "interrupted"    # a checkpoint short of the planned steps: resumed from it
    CRASHED = "crashed"            # the last attempt raised; retried (from its checkpoint) on the next launch
    TRAINED = "trained"            # trained, but not evaluated with the study's current evaluation settings
    FINISHED = "finished"          # trained and evaluated: skipped (its checkpoint may be gone: records only)
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
    env_steps_per_s: float | None = None  # of a running run, over its last logged interval

    @property
    def training_eta(self) -> float | None:
        """Seconds until a running run has trained to its planned steps at its last speed (evaluation follows)."""
        if self.state is not RunState.RUNNING or not self.env_steps_per_s:
            return None
        return max(0, self.total_steps - self.env_steps) / self.env_steps_per_s


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


def run_status(run_dir: Path, cfg: DictConfig, evaluation: dict) -> RunStatus:
    """The state of the run in ``run_dir`` that the study plans with config ``cfg``."""
    name, total, files = run_dir.name, int(cfg.steps), RunDir(run_dir)
    if not files.has_run_files():
        return RunStatus(name, RunState.PENDING, total_steps=total)
    record = files.job_record()
    trained_steps = files.trained_steps()
    status = RunStatus(name, RunState.FINISHED, max(trained_steps, files.last_logged_step()), total, files.updated())
    if is_locked(run_dir):
        status.state, status.detail = RunState.RUNNING, describe_holder(lock_holder(run_dir / LOCK_NAME))
        status.env_steps_per_s = files.last_logged_speed()
        return status
    config_path, checkpoint = files.config, files.checkpoint
    if config_path.exists():
        try:
            saved = OmegaConf.to_container(OmegaConf.load(config_path), resolve=True)
        except Exception as error:  # noqa: BLE001 - any unreadable config makes the directory half-written
            status.state, status.detail = RunState.HALF_WRITTEN, f"{config_path.name} unreadable ({error})"
            return status
        conflicts = resume_conflicts(saved, OmegaConf.to_container(cfg, resolve=True))
        if conflicts:
            status.state = RunState.CONFLICT
            status.detail = (f"its config differs from the study's ({'; '.join(conflicts[:4])}); move it away or "
                             f"use another study directory")
            return status
    if record.get("state") == "crashed":
        status.state, status.detail = RunState.CRASHED, record.get("error", "")
        status.log_tail = log_tail(files.job_log, 10)  # only crashes show it: not read on every poll
        return status
    trained = files.trained(total)
    reason = evaluation_done(record, evaluation, trained_steps) if trained else None
    if config_path.exists() and not checkpoint.exists() and trained and reason is None:
        status.detail = f"records only (no {checkpoint.name}, as `study export` leaves it)"
        return status  # finished: its results need nothing more
    if not (config_path.exists() and checkpoint.exists()):
        missing = [p.name for p in (config_path, checkpoint) if not p.exists()]
        status.state = RunState.HALF_WRITTEN
        status.detail = (f"no {' and no '.join(missing)}: " +
                         ("nothing to evaluate from" if trained else "stopped before its first checkpoint"))
        return status
    if not trained:
        status.state = RunState.INTERRUPTED
        trainer = files.status().get("state", "no trainer status")
        if trainer == "running":  # and no process holds the run's lock: it died without writing how it stopped
            trainer = "its process died while training: the steps after it are redone"
        status.detail = f"checkpoint at {trained_steps:,} env steps ({trainer})"
        return status
    if reason:
        status.state, status.detail = RunState.TRAINED, reason
    return status


def format_age(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 120:
        return f"{seconds}s ago"
    return f"{seconds // 60}m ago" if seconds < 7200 else f"{seconds // 3600}h ago"


def format_status_table(statuses: list[RunStatus], now: float | None = None) -> str:
    """A plain-text table: run, state, progress, last update, next action and detail (with a running run's speed
    and when it will have trained, or that it is evaluating)."""
    now = now or time.time()
    rows = [("run", "state", "progress", "updated", "next", "detail")]
    for s in statuses:
        progress = f"{s.env_steps:,}/{s.total_steps:,} ({100 * s.env_steps / max(s.total_steps, 1):.0f}%)"
        detail = s.detail
        if s.training_eta is not None:
            speed = (f"{s.env_steps_per_s:.1f} env-steps/s, trained in ~{format_duration(s.training_eta)}"
                     if s.training_eta > 0 else "evaluating")
            detail = f"{speed}; {detail}"
        rows.append((s.name, s.state.value, progress, format_age(now - s.updated) if s.updated else "-",
                     s.state.action, detail))
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


def request_stop(study_dir: Path, signum: int) -> None:
    atomic_write_text(Path(study_dir) / STOP_FILE, json.dumps({"signal": signum, "time": time.time()}))


def stop_requested(study_dir: Path) -> bool:
    return (Path(study_dir) / STOP_FILE).exists()


def clear_stop_request(study_dir: Path) -> None:
    (Path(study_dir) / STOP_FILE).unlink(missing_ok=True)
