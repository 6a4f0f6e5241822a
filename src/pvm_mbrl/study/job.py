"""One study job: bring one run of a study to ``finished`` (train or resume it, then evaluate it on every suite).

``run_job`` is the task function Hydra's launchers call (in this process, in joblib workers, in SLURM jobs through
submitit, or in Ray tasks): it takes only the study directory and the run's name, and reads everything else from
the study's ``study.yaml``, so a job needs nothing from the process that launched it. It holds the run directory's
lock while it works; everything it prints also goes to the run's ``job.log``; a crash is recorded in ``job.json``
(error, traceback, last log lines) and returned, never raised, so one broken run does not stop the others.

An interrupt (SIGINT, SIGTERM, SIGUSR2) stops the run with a checkpoint. In the launcher's own process it is raised,
ending the launch; in a job of its own (a joblib worker, a SLURM job, a Ray task) it is returned instead, since an
exception would make joblib kill the other workers before their checkpoints are written. A job that finds the study's
stop request does not start; a running job away from its launcher stops on it as on a signal.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from omegaconf import DictConfig

from pvm_mbrl.errors import handle_stop_signals, raise_interrupt_then, restore_signal_handlers
from pvm_mbrl.locks import LockedError, directory_lock
from pvm_mbrl.rundir import RunDir, log_tail
from pvm_mbrl.study.plan import RunSpec, StudyPlan, run_config
from pvm_mbrl.study.state import evaluation_done, read_plan_dict, stop_requested

DISCARDED_DIR = ".discarded"  # hidden: reports and run discovery skip it
STOP_POLL_SECONDS = 2.0  # how often a job away from its launcher looks for the study's stop request


class _Tee(io.TextIOBase):
    """Writes to the console stream and the run's log at once."""

    def __init__(self, console, log):
        self.console, self.log = console, log

    def write(self, text: str) -> int:
        self.console.write(text)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def tee_output(log_path: Path) -> Iterator[None]:
    """Everything printed in the block also goes to ``log_path`` (appended, so retries keep earlier attempts)."""
    with open(log_path, "a", buffering=1) as log, \
            contextlib.redirect_stdout(_Tee(sys.stdout, log)), contextlib.redirect_stderr(_Tee(sys.stderr, log)):
        yield


def discard_half_written(run_dir: Path) -> Path | None:
    """Move a run directory without a checkpoint aside (``STUDY/.discarded/``) so the run starts clean; the files
    stay there for inspection. Returns where they went, or None when there was nothing to discard."""
    files = RunDir(run_dir)
    output = files.training_output()  # the lock is held; the job's record and log continue
    if files.checkpoint.exists() or not output:
        return None
    target = run_dir.parent / DISCARDED_DIR / f"{run_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    target.mkdir(parents=True)
    for path in output:
        shutil.move(str(path), target / path.name)
    return target


def execute_run(study_dir: Path, plan: StudyPlan, spec: RunSpec) -> dict:
    """Train (resuming) and evaluate one run; returns its job record (``state``: finished, crashed, busy, or
    stopped when the study was asked to stop before the job began)."""
    run_dir = Path(study_dir) / spec.name
    if stop_requested(study_dir):
        print(f"[study] {spec.name}: not started, the study is stopping", flush=True)
        return {"state": "stopped"}
    try:
        with directory_lock(run_dir, f"study {plan.preset} job"):
            return _attempt(Path(study_dir), plan, spec, run_dir)
    except LockedError as error:
        print(f"[study] {spec.name}: skipped, {error}", flush=True)
        return {"state": "busy", "error": str(error)}


def _attempt(study_dir: Path, plan: StudyPlan, spec: RunSpec, run_dir: Path) -> dict:
    from pvm_mbrl.evaluation.settings import EvaluationSettings
    from pvm_mbrl.evaluation.suites import evaluate_suites
    from pvm_mbrl.training.allocator import release_freed_memory
    from pvm_mbrl.training.loop import train

    files = RunDir(run_dir)
    with tee_output(files.job_log):
        record = files.job_record()
        record.update(state="running", attempts=record.get("attempts", 0) + 1, host=socket.gethostname(),
                      pid=os.getpid(), started=time.time())
        for stale in ("error", "traceback", "log_tail"):
            record.pop(stale, None)
        files.write_job_record(record)
        try:
            discarded = discard_half_written(run_dir)
            if discarded:
                print(f"[study] {spec.name}: no checkpoint; moved its half-written files to {discarded}", flush=True)
            cfg = run_config(study_dir, spec)
            if not files.trained(cfg.steps):
                print(f"[study] {spec.name}: training to {cfg.steps:,} env steps", flush=True)
                train(cfg)
                release_freed_memory()  # training kept its freed memory for reuse; evaluation does not need it
            env_steps = files.trained_steps()
            if not files.trained(cfg.steps):
                raise RuntimeError(f"training stopped at {env_steps:,} env steps ({files.status().get('state')}); "
                                   f"re-run the study to continue")
            reason = evaluation_done(record, plan.evaluation, env_steps)
            if reason:
                print(f"[study] {spec.name}: evaluating on every suite ({reason})", flush=True)
                evaluate_suites(run_dir, EvaluationSettings(**plan.evaluation))
                record.update(evaluation=plan.evaluation, evaluated_env_steps=env_steps)
            record.update(state="finished", finished=time.time())
            print(f"[study] {spec.name}: finished", flush=True)
        except KeyboardInterrupt:
            record.update(state="interrupted")
            files.write_job_record(record)
            raise
        except Exception as error:  # noqa: BLE001 - a crash is the run's, reported; the study goes on
            record.update(state="crashed", error=f"{type(error).__name__}: {error}",
                          traceback=traceback.format_exc())
            print(f"[study] {spec.name}: CRASHED: {record['error']}", file=sys.stderr, flush=True)
    if record["state"] == "crashed":
        record["log_tail"] = log_tail(files.job_log)
    files.write_job_record(record)
    return record


@contextlib.contextmanager
def stopping_on_request(study_dir: Path, every: float = STOP_POLL_SECONDS) -> Iterator[None]:
    """For a job that its launcher's signals do not reach (a Ray task): once the study's stop request appears, this
    process gets a SIGTERM, as from a scheduler, so its run stops with a checkpoint. The watcher has ended when the
    block does, so no signal comes after it."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(every):
            if stop_requested(study_dir):
                os.kill(os.getpid(), signal.SIGTERM)
                return

    watcher = threading.Thread(target=watch, name="study-stop-request", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def execute_run_as_job(study_dir: Path, plan: StudyPlan, spec: RunSpec, local_worker: bool) -> dict:
    """``execute_run`` in a process of its own (a joblib worker, a SLURM job, a Ray task): the first stop signal
    stops the run (training writes its checkpoint) and the job returns its record, so its launcher learns how it
    ended and keeps waiting for the others; away from the launcher, the study's stop request is such a signal too.
    A ``local_worker`` then ignores signals, also while it waits for its next job (an exception escaping a joblib
    worker, or a worker dying, makes joblib kill the others at once); elsewhere the handlers from before come back
    (the process is the job's, or Ray's to reuse)."""
    previous = handle_stop_signals(raise_interrupt_then(signal.SIG_IGN))
    try:
        with contextlib.nullcontext() if local_worker else stopping_on_request(study_dir):
            return execute_run(study_dir, plan, spec)
    except KeyboardInterrupt:
        pass  # its record says so; returned below, once further signals cannot cut the return short
    finally:
        if local_worker:
            handle_stop_signals(signal.SIG_IGN)
        else:
            restore_signal_handlers(previous)
    return {**RunDir(Path(study_dir) / spec.name).job_record(), "state": "interrupted"}


def run_job(cfg: DictConfig) -> dict:
    """Hydra task function: ``cfg.study_dir`` and ``cfg.run`` name the job; ``cfg.launcher_pid`` tells the launcher's
    own process (the basic launcher, whose interrupt ends the launch) from its local workers (its children) and from
    jobs elsewhere."""
    study_dir = Path(str(cfg.study_dir))
    plan = StudyPlan.from_dict(read_plan_dict(study_dir))
    spec = plan.run(str(cfg.run))
    launcher_pid = cfg.get("launcher_pid")
    if launcher_pid is None or os.getpid() == launcher_pid:
        return execute_run(study_dir, plan, spec)
    return execute_run_as_job(study_dir, plan, spec, local_worker=os.getppid() == launcher_pid)
