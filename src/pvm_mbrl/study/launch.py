"""``pvm-mbrl study``: plan a study, launch the runs that are not finished through a Hydra launcher, report.

The study directory is the single source of truth. Launching writes the plan (``study.yaml``), reads every run's
state from its directory (``state.py``), and hands only the unfinished runs to Hydra's multirun with the chosen
launcher (``hydra/launcher=basic|joblib|submitit_slurm|submitit_local|ray``); each job brings its run to
``finished`` (``job.py``). Re-running the same command therefore skips finished runs, resumes interrupted ones from
their checkpoints and re-evaluates only runs whose evaluation settings changed. A lock on the study directory stops
two launches of the same study at once; each run's own lock stops two jobs on one run. Ctrl-C or SIGTERM stops a
local study without losing training: every running run writes a checkpoint and no further run starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from pvm_mbrl.errors import Interrupted, handle_stop_signals, restore_signal_handlers
from pvm_mbrl.locks import directory_lock
from pvm_mbrl.rundir import JOB_LOG
from pvm_mbrl.study.estimate import estimate_run, queue_wall_hours
from pvm_mbrl.study.plan import StudyPlan, is_launcher_override, make_plan, preset_name, run_configs
from pvm_mbrl.study.state import (
    PLAN_FILE,
    RunState,
    RunStatus,
    clear_stop_request,
    format_status_table,
    read_plan_dict,
    request_stop,
    run_status,
    summary_line,
    write_plan,
)
from pvm_mbrl.training.config import CONF_DIR
from pvm_mbrl.training.logger import format_duration

if TYPE_CHECKING:
    from pvm_mbrl.analysis.report_options import ReportOptions

JOB_CONFIG = "study_job"


def with_launcher_defaults(overrides: list[str]) -> list[str]:
    """Hydra launcher overrides plus what a launcher needs to work as documented: the Ray launcher always passes
    ``object_store_memory`` to ``ray.init``, which Ray refuses when joining a running cluster."""
    joins_ray = "hydra/launcher=ray" in overrides and any(o.startswith("hydra.launcher.ray.init.address=")
                                                          for o in overrides)
    if joins_ray and not any("ray.init.object_store_memory" in o for o in overrides):
        return [*overrides, "+hydra.launcher.ray.init.object_store_memory=null"]
    return overrides


def study_statuses(study_dir: Path, plan: StudyPlan, configs: dict[str, DictConfig]) -> list[RunStatus]:
    return [run_status(study_dir / spec.name, configs[spec.name], plan.evaluation) for spec in plan.runs]


def load_study(study_dir: str | Path) -> tuple[Path, StudyPlan]:
    study_dir = Path(study_dir).resolve()
    return study_dir, StudyPlan.from_dict(read_plan_dict(study_dir))


def status_report(study_dir: str | Path) -> str:
    """``pvm-mbrl study status``: a table of every run's state and progress, then the last log lines of crashes."""
    study_dir, plan = load_study(study_dir)
    # Validated when the study was planned; validating again would load torch and every env for a status table.
    configs = run_configs(study_dir, plan, validate=False)
    statuses = study_statuses(study_dir, plan, configs)
    lines = [f"study {plan.preset} in {study_dir}: {summary_line(statuses)}"
             f"{hours_left(statuses, plan, configs, plan.launcher)}", "", format_status_table(statuses)]
    for status in statuses:
        if status.state is RunState.CRASHED and status.log_tail:
            lines += ["", f"last lines of {status.name}/{JOB_LOG}:", *(f"  {line}" for line in status.log_tail)]
    return "\n".join(lines)


def describe_launcher(launcher_overrides: list[str]) -> str:
    return " ".join(launcher_overrides) or "hydra/launcher=basic (one run after another)"


def parallel_jobs(launcher_overrides: list[str]) -> int:
    """Runs at once under these launcher overrides: ``hydra.launcher.n_jobs`` where given, else 1."""
    values = [o.split("=", 1)[1] for o in launcher_overrides if o.startswith("hydra.launcher.n_jobs=")]
    return max(1, int(values[-1])) if values and values[-1].lstrip("-").isdigit() else 1


LOCAL_LAUNCHERS = ("hydra/launcher=joblib", "hydra/launcher=submitit_local")  # their runs share this machine
WORKER_LAUNCHER = "hydra/launcher=joblib"  # runs each job in a worker process that is a child of the launcher
RAY_LAUNCHER = "hydra/launcher=ray"  # its tasks end with the launcher's process: they stop on the study's request


def runs_sharing_wall_time(launcher_overrides: list[str], cores: int) -> int:
    """How many runs' compute overlaps in wall time: ``n_jobs``, but on a local launcher at most one per core
    (three runs on two cores each take 1.5x as long; the estimate's per-update costs are one run per core)."""
    jobs = parallel_jobs(launcher_overrides)
    return min(jobs, max(1, cores)) if any(o in LOCAL_LAUNCHERS for o in launcher_overrides) else jobs


def dry_run(plan: StudyPlan, study_dir: Path, configs: dict[str, DictConfig], launcher: list[str],
            longest_first: bool = False) -> str:
    """Every run with its overrides and compute estimate, and the study's wall time in the launch order; nothing is
    written."""
    costs = plan.estimate
    lines = [f"study {plan.preset}: {len(plan.runs)} runs in {study_dir}", plan.description, ""]
    total_updates, total_hours, hours_by_run = 0, 0.0, {}
    for k, spec in enumerate(plan.runs, 1):
        cfg = configs[spec.name]
        estimate = estimate_run(cfg, costs, int(plan.evaluation["episodes"]))
        total_updates += estimate.updates
        hours = f", ~{estimate.hours:.1f} h" if estimate.hours is not None else ""
        if estimate.evaluation_hours is not None:
            hours += f"; evaluation ~{estimate.evaluation_hours:.1f} h"
        hours_by_run[spec.name] = estimate.total_hours or 0.0
        total_hours += hours_by_run[spec.name]
        lines += [f"{k:3d}. {spec.name}",
                  f"     config: {' '.join(spec.overrides)}",
                  f"     compute: {estimate.env_steps:,} env steps ({estimate.agent_steps:,} agent steps), "
                  f"{estimate.updates:,} updates of {cfg.batch_size}x{cfg.batch_length} ({cfg.model.deter} deter), "
                  f"{estimate.replayed_frames:,} replayed frames, {estimate.encoder_images:,} encoder images{hours}; "
                  f"{estimate.evaluation_episodes:,} evaluation episodes"]
    lines += ["", f"total: {total_updates:,} updates" + (f", ~{total_hours:,.1f} h ({total_hours / 24:,.1f} days) "
                                                         f"on {costs.get('device', '?')}" if total_hours else "")]
    jobs, cores = parallel_jobs(launcher), os.cpu_count() or 1
    sharing = runs_sharing_wall_time(launcher, cores)
    shared = f" (sharing this machine's {cores} cores)" if sharing < jobs else ""
    at_once = ""
    if jobs > 1 and total_hours:
        pending = [RunStatus(spec.name, RunState.PENDING) for spec in plan.runs]
        wall, other = wall_time(pending, hours_by_run, plan, configs, sharing, longest_first)
        at_once = f"; {jobs} runs at once{shared}: {wall}{other}"
    lines.append(f"launcher: {describe_launcher(launcher)}{at_once}")
    if costs.get("source"):
        lines.append(f"estimate source: {costs['source']}")
    return "\n".join(lines)


@dataclass(frozen=True)
class WorkLeft:
    """What a run still needs: the untrained share of its estimated training hours plus its evaluation's (None when
    the preset states no costs), and the untrained share of its updates."""

    hours: float | None
    updates: float


def work_left(status: RunStatus, cfg: DictConfig, plan: StudyPlan) -> WorkLeft:
    if status.state in (RunState.FINISHED, RunState.CONFLICT):  # nothing more will run
        return WorkLeft(0.0, 0.0)
    estimate = estimate_run(cfg, plan.estimate, int(plan.evaluation["episodes"]))
    untrained = max(0, int(cfg.steps) - status.env_steps) / max(1, int(cfg.steps))
    hours = None if estimate.hours is None else untrained * estimate.hours + (estimate.evaluation_hours or 0.0)
    return WorkLeft(hours, untrained * estimate.updates)


def launch_order(statuses: list[RunStatus], plan: StudyPlan, configs: dict[str, DictConfig],
                 longest_first: bool) -> list[str]:
    """The runs to launch: in plan order, or (``longest_first``) the most work left first (estimated hours, else
    updates), which finishes a study on a few workers sooner (a long run started last would run alone at the end)
    but, cut short, leaves whole configurations rather than whole seeds missing. Ties keep plan order."""
    todo = [s for s in statuses if s.state.to_launch]
    if longest_first:
        def work(status: RunStatus) -> float:
            left = work_left(status, configs[status.name], plan)
            return left.updates if left.hours is None else left.hours

        todo.sort(key=lambda s: -work(s))
    return [s.name for s in todo]


def wall_time(statuses: list[RunStatus], left: dict[str, float], plan: StudyPlan, configs: dict[str, DictConfig],
              workers: int, longest_first: bool) -> tuple[str, str]:
    """``("~5.1 h wall", " (~4.6 h with --longest-first)")``: the estimated wall time until every run is done with
    ``workers`` runs at once, given each run's hours ``left``: the running runs first, then the others in launch
    order; in plan order, also the time with ``--longest-first`` when that differs (else ``""``)."""
    running = [s.name for s in statuses if s.state is RunState.RUNNING]

    def wall(longest: bool) -> str:
        queue = running + launch_order(statuses, plan, configs, longest)
        return f"{queue_wall_hours([left[name] for name in queue], workers):.1f}"

    in_order = wall(longest_first)
    if longest_first:
        return f"~{in_order} h wall", ""
    longest = wall(True)
    return f"~{in_order} h wall", "" if longest == in_order else f" (~{longest} h with --longest-first)"


def hours_left(statuses: list[RunStatus], plan: StudyPlan, configs: dict[str, DictConfig],
               launcher: list[str], longest_first: bool = False) -> str:
    """``; ~9.6 h of compute left by the preset's estimate, ~5.1 h wall at 2 runs at once`` (empty without costs).
    ``study status`` does not know the order the runs were launched in and states plan order's (the default)."""
    left = {s.name: work_left(s, configs[s.name], plan).hours for s in statuses}
    if any(h is None for h in left.values()) or not sum(left.values()):
        return ""
    text = f"; ~{sum(left.values()):.1f} h of compute left by the preset's estimate"
    workers = runs_sharing_wall_time(launcher, os.cpu_count() or 1)
    if workers == 1:
        return text
    wall, other = wall_time(statuses, left, plan, configs, workers, longest_first)
    return f"{text}, {wall} at {workers} runs at once{other}"


class ProgressMonitor(threading.Thread):
    """Prints the study's summary line every ``every`` seconds while jobs run (from the study directory, so it sees
    jobs in other processes and on other machines too)."""

    def __init__(self, study_dir: Path, plan: StudyPlan, configs: dict[str, DictConfig], launcher: list[str],
                 every: float, longest_first: bool):
        super().__init__(daemon=True)
        self.study_dir, self.plan, self.configs, self.launcher, self.every = study_dir, plan, configs, launcher, every
        self.longest_first = longest_first
        self.stopped = threading.Event()
        self.start_time = time.time()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            statuses = study_statuses(self.study_dir, self.plan, self.configs)
            print(f"[study] {format_duration(time.time() - self.start_time)} elapsed: {summary_line(statuses)}"
                  f"{hours_left(statuses, self.plan, self.configs, self.launcher, self.longest_first)}", flush=True)


@dataclass
class StopSignal:
    signum: int | None = None  # the signal that asked the study to stop, once one has


@contextlib.contextmanager
def stopping_on_signal(study_dir: Path, to_workers: bool) -> Iterator[StopSignal]:
    """While jobs elsewhere run the study: the first stop signal asks the study to stop. The request is written to
    the study directory: jobs not begun yet see it and do not start, and a Ray task stops on it. With ``to_workers``
    (joblib) the signal is passed on to this process's workers as well (a ``kill`` reaches only this process; a
    terminal's Ctrl-C already reached them); never to a local Ray's processes, which would end with the tasks' work.
    Running runs write checkpoints and the launch then ends as usual. A second signal stops at once, as Ctrl-C did
    before."""
    import psutil

    stop = StopSignal()

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        if stop.signum is not None:
            raise Interrupted(signum)
        stop.signum = signum
        request_stop(study_dir, signum)
        print(f"[study] signal {signum}: stopping; running runs write a checkpoint, no further run starts (signal "
              f"again to stop at once, losing what they did since their last checkpoint)", flush=True)
        for worker in psutil.Process().children() if to_workers else []:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.send_signal(signum)

    previous = handle_stop_signals(on_signal)
    try:
        yield stop
    finally:
        restore_signal_handlers(previous)


def launch(study_dir: Path, names: list[str], launcher_overrides: list[str]) -> None:
    """Run ``names`` as one Hydra multirun of ``run_job`` with the chosen launcher."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    from pvm_mbrl.study.job import run_job

    GlobalHydra.instance().clear()
    hydra = Hydra.create_main_hydra2(task_name="pvm-mbrl-study", config_search_path=create_config_search_path(
        str(CONF_DIR)))
    runs = ",".join(f"'{name}'" for name in names)  # quoted: a name is never read as a number or a list
    overrides = [f"study_dir='{study_dir}'", f"run={runs}", f"launcher_pid={os.getpid()}",
                 *with_launcher_defaults(launcher_overrides)]
    try:
        hydra.multirun(config_name=JOB_CONFIG, task_function=run_job, overrides=overrides)
    finally:
        GlobalHydra.instance().clear()
        release_local_workers()


def release_local_workers() -> None:
    """End the joblib launcher's worker processes now: loky keeps them for reuse, each holding its finished run's
    memory (~1.5 GB in ``quick``), which would stay resident while the report is built."""
    if "joblib" in sys.modules:  # only when a joblib launcher ran in this process
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)


@dataclass(frozen=True)
class StudyOptions:
    study_dir: Path | None = None
    dry_run: bool = False
    progress_every: float = 60.0
    report: bool = True
    longest_first: bool = False  # launch order; see launch_order


def default_study_dir(preset_name: str) -> Path:
    return Path("studies") / preset_name


def report_notes(plan: StudyPlan) -> tuple[str, ...]:
    edited = f" (edited on the command line: `{' '.join(plan.overrides)}`)" if plan.overrides else ""
    notes = [f"Study preset `{plan.preset}`{edited}: {plan.description}"]
    if not plan.conclusive:
        notes.append("**This study is a pipeline check, far too small for conclusions**: tens of thousands of "
                     "env steps, one seed and a tiny model cannot separate the encoders; its numbers show that every "
                     "stage runs, not what the paper found. Use `dmc-shift` (its comparison at CPU scale) or the "
                     "`paper` (or `offline-paper`) preset for results.")
    return tuple(notes)


def study_report_options(study_dir: str | Path, given: dict | None = None) -> ReportOptions:
    """The report settings of the study in ``study_dir`` (its preset's ``report`` section and notes; the defaults
    for a directory of runs without a ``study.yaml``), with the settings ``given`` on the command line on top."""
    from pvm_mbrl.analysis.report_options import ReportOptions

    given = given or {}
    if not (Path(study_dir) / PLAN_FILE).exists():
        return ReportOptions(**given)
    _, plan = load_study(study_dir)
    return ReportOptions(**{**plan.report, **given}, notes=report_notes(plan))


def write_study_report(study_dir: Path) -> tuple[Path, Path]:
    from pvm_mbrl.analysis.report import write_report

    return write_report(study_dir, options=study_report_options(study_dir))


def run_study(preset: str, overrides: list[str], options: StudyOptions | None = None) -> int:
    """Plan, launch, report; returns the exit status (0 when every run finished, 1 otherwise)."""
    options = options or StudyOptions()
    launcher_overrides = [o for o in overrides if is_launcher_override(o)]
    run_overrides = [o for o in overrides if not is_launcher_override(o)]
    study_dir = (options.study_dir or default_study_dir(preset_name(preset))).resolve()
    plan, configs = make_plan(preset, run_overrides, study_dir)
    launcher = launcher_overrides or plan.launcher  # the command line's, else the preset's
    if options.dry_run:
        print(dry_run(plan, study_dir, configs, launcher, options.longest_first))
        return 0
    with directory_lock(study_dir, f"study {plan.preset} launcher"):
        write_plan(study_dir, plan.to_dict())
        clear_stop_request(study_dir)  # left by a launcher killed while stopping
        statuses = study_statuses(study_dir, plan, configs)
        print(f"[study] {plan.preset} in {study_dir}: {len(plan.runs)} runs\n{format_status_table(statuses)}",
              flush=True)
        todo = launch_order(statuses, plan, configs, options.longest_first)
        stop, lost_job = StopSignal(), None
        if todo:
            print(f"[study] launching {len(todo)} run(s): {', '.join(todo)} ({describe_launcher(launcher)})",
                  flush=True)
            monitor = ProgressMonitor(study_dir, plan, configs, launcher, options.progress_every,
                                      options.longest_first)
            monitor.start()
            # In-process jobs stop through training's own handler (the interrupt ends the launch); workers and Ray
            # tasks need ours. A cluster's jobs are its own: the scheduler stops them (a signal, a time limit).
            to_workers, ray = WORKER_LAUNCHER in launcher, RAY_LAUNCHER in launcher
            stopping = stopping_on_signal(study_dir, to_workers) if to_workers or ray else contextlib.nullcontext(stop)
            try:
                with stopping as stop:
                    launch(study_dir, todo, launcher)
            # A run's failure, or a stop signal to its job (scancel, a time limit), ends in its record, which the job
            # returns; what reaches here is a job killed outright (OOM killer, a lost node), after which the launcher
            # (submitit, Ray, joblib) gives up on the rest.
            except Exception as error:  # noqa: BLE001 - reported with the study's state instead of a traceback
                lost_job = error
            finally:
                monitor.stopped.set()
                clear_stop_request(study_dir)
        statuses = study_statuses(study_dir, plan, configs)
        if stop.signum is not None:
            print(f"[study] stopped by signal {stop.signum}: {summary_line(statuses)}; the same command resumes "
                  f"it\n{format_status_table(statuses)}", flush=True)
            return 128 + stop.signum
        if lost_job is not None:
            reason = " ".join(str(lost_job).strip().splitlines()[:2])  # submitit's second line has the job's state
            print(f"[study] the launcher lost a job ({type(lost_job).__name__}: {reason}; the launcher's logs are "
                  f"under {study_dir}/.launcher) and stopped waiting for the others; runs still running go on (a "
                  f"cluster's jobs are its own): {summary_line(statuses)}. No report; the same command resumes the "
                  f"rest once they end\n{format_status_table(statuses)}", flush=True)
            return 1
        print(f"[study] done: {summary_line(statuses)}\n{format_status_table(statuses)}", flush=True)
        for status in statuses:
            if status.state is RunState.CRASHED:
                print(f"[study] {status.name} crashed: {status.detail}; last lines of its {JOB_LOG}:\n  " +
                      "\n  ".join(status.log_tail), flush=True)
        if options.report and any(s.state in (RunState.FINISHED, RunState.TRAINED) for s in statuses):
            md_path, html_path = write_study_report(study_dir)
            print(f"[study] report: {md_path} and {html_path}", flush=True)
    return 0 if all(s.state is RunState.FINISHED for s in statuses) else 1
