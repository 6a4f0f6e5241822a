"""``pvm-mbrl study export``: a study's plan and its finished runs' records, without checkpoints or replay.

A finished run's results (evaluation, metrics, TensorBoard events, config, job record) take a few megabytes; the
checkpoint and replay that produced them take hundreds of megabytes to gigabytes. The export is itself a study
directory in which those runs read as finished (``state.py``): ``pvm-mbrl report`` writes the same report from it,
and launching the study on it trains only the runs that had not finished. So a study's results can be published
with a paper, archived, or carried to a machine that continues the study after the first one is gone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pvm_mbrl.analysis.study import read_study
from pvm_mbrl.locks import is_locked
from pvm_mbrl.rundir import RunDir
from pvm_mbrl.study.launch import load_study, study_statuses
from pvm_mbrl.study.plan import StudyPlan, run_configs
from pvm_mbrl.study.state import PLAN_FILE, RunState, read_plan_dict

STAGING_PREFIX = ".export-"  # hidden: run discovery skips a copy that an interrupted export left half done


def export_study(study_dir: str | Path, destination: str | Path) -> list[str]:
    """Copy ``study.yaml`` and every finished run's records into ``destination`` and write its ``returns.csv``;
    returns the runs copied.

    A run already in ``destination`` is replaced as a whole (each run is copied beside it, then swapped in), so an
    export can be repeated as a study goes on. Refused: exporting onto the study itself, into a directory that holds
    another study's plan, or over a run a job is working on."""
    study_dir, plan = load_study(study_dir)
    destination = Path(destination).resolve()
    if destination == study_dir:
        raise ValueError(f"cannot export {study_dir} onto itself; name another directory")
    if destination.exists() and not destination.is_dir():
        raise ValueError(f"export destination {destination} is a file; name a directory")
    if (destination / PLAN_FILE).exists() and not StudyPlan.from_dict(read_plan_dict(destination)).same_study(plan):
        raise ValueError(f"{destination} holds another study's {PLAN_FILE}; export into an empty directory or an "
                         f"earlier export of {study_dir}")
    statuses = study_statuses(study_dir, plan, run_configs(study_dir, plan, validate=False))
    finished = [s.name for s in statuses if s.state is RunState.FINISHED]
    busy = [name for name in finished if is_locked(destination / name)]
    if busy:
        raise ValueError(f"a job is working on {', '.join(busy)} in {destination}; stop it before exporting there")
    destination.mkdir(parents=True, exist_ok=True)
    shutil.copy2(study_dir / PLAN_FILE, destination / PLAN_FILE)
    for name in finished:
        staging = destination / f"{STAGING_PREFIX}{name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for path in RunDir(study_dir / name).records():
            copy = shutil.copytree if path.is_dir() else shutil.copy2
            copy(path, staging / path.name)
        shutil.rmtree(destination / name, ignore_errors=True)
        staging.rename(destination / name)
    read_study(destination).write_table()  # the episode table of what the export holds, never an older one's
    return finished
