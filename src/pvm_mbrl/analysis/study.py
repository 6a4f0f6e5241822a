"""Reading a study directory: every run directory under it, what each holds, and what is wrong with it.

A study is any directory tree whose run directories (``pvm_mbrl.rundir.find_run_dirs``: as ``pvm-mbrl train``
writes them) are the runs to compare. Reading never
fails on one bad run: each problem becomes a line naming the run and what is missing, the run is kept for whatever
it still has (curves without an evaluation, an evaluation of a run still training) or left out when nothing of it
can be used, and the report covers the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pvm_mbrl.evaluation.settings import STUDY_TABLE, model_identity, suite_names
from pvm_mbrl.rundir import RUN_FILES, TABLE_COLUMNS, RunDir, find_run_dirs, read_json

FINETUNE_ORDER = ("scratch", "full", "partial", "frozen")


@dataclass
class Run:
    """One run directory of a study and what could be read from it."""

    path: Path
    name: str
    cfg: DictConfig
    env: str
    encoder: str
    finetune: str
    model: str
    seed: int
    state: str
    has_checkpoint: bool
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    episodes: pd.DataFrame | None = None
    analysis: dict | None = None

    def curve(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(steps, values)`` of one metric, or None if the run never logged it.

        A resumed run re-logs the steps after its last checkpoint; the later (resumed) records replace the earlier
        ones, so the curve has strictly increasing steps.
        """
        if key not in self.metrics:
            return None
        rows = self.metrics[["step", key]].dropna()
        kept: list[tuple[int, float]] = []
        for step, value in zip(rows["step"].to_numpy(), rows[key].to_numpy(), strict=True):
            while kept and kept[-1][0] >= step:
                kept.pop()
            kept.append((int(step), float(value)))
        if not kept:
            return None
        steps, values = zip(*kept, strict=True)
        return np.array(steps, dtype=float), np.array(values, dtype=float)


@dataclass
class Study:
    """The runs of a study directory and the problems found reading it."""

    path: Path
    runs: list[Run]
    problems: list[str]

    def envs(self) -> list[str]:
        return sorted({run.env for run in self.runs})

    def runs_of(self, env: str) -> list[Run]:
        return [run for run in self.runs if run.env == env]

    def models(self, env: str) -> list[str]:
        """An env's models, CNN baseline first, then by encoder and fine-tuning (full, partial, frozen)."""
        def order(run: Run) -> tuple:
            tune = FINETUNE_ORDER.index(run.finetune) if run.finetune in FINETUNE_ORDER else len(FINETUNE_ORDER)
            return run.encoder != "cnn", run.encoder, tune, run.finetune

        return list(dict.fromkeys(run.model for run in sorted(self.runs_of(env), key=order)))

    def table(self) -> pd.DataFrame:
        """The tidy table of every evaluated run: one row per run x suite x episode (``TABLE_COLUMNS``)."""
        parts = [run.episodes.assign(run=run.name) for run in self.runs if run.episodes is not None]
        if not parts:
            return pd.DataFrame(columns=list(TABLE_COLUMNS))
        return pd.concat(parts, ignore_index=True)[list(TABLE_COLUMNS)]

    def write_table(self) -> Path:
        path = self.path / STUDY_TABLE
        self.table().to_csv(path, index=False)
        return path


def read_metrics_table(files: RunDir) -> tuple[pd.DataFrame, str | None]:
    """A run's metrics as a table, skipping lines that do not decode; returns ``(table, note)``."""
    records, note = files.metric_records()
    table = pd.DataFrame(records)
    if len(table) and "step" not in table:
        return pd.DataFrame(), f"{files.metrics_path.name} has no 'step' field; no curves"
    return table, note


def _read_evaluation(run: Run, problems: list[str]) -> None:
    """Attach the run's episode table and analysis record, reporting missing or mismatched suites."""
    files = RunDir(run.path)
    table_name = files.episodes.relative_to(files.path).as_posix()
    if not files.episodes.exists():
        if run.has_checkpoint:
            problems.append(f"{run.name}: not evaluated yet (no {table_name}); run "
                            f"`pvm-mbrl evaluate {run.path}`")
        else:
            problems.append(f"{run.name}: no {files.checkpoint.name} and no evaluation; it cannot be evaluated, "
                            f"only its curves are used")
        return
    try:
        episodes = pd.read_csv(files.episodes)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        problems.append(f"{run.name}: {table_name} is unreadable ({error}); re-run evaluate")
        return
    missing_columns = [c for c in TABLE_COLUMNS if c != "run" and c not in episodes]
    if missing_columns:
        problems.append(f"{run.name}: {table_name} lacks columns {', '.join(missing_columns)}; "
                        f"re-run evaluate")
        return
    if set(episodes["env"]) != {run.env}:
        problems.append(f"{run.name}: its evaluation is of env {sorted(set(episodes['env']))}, its config of "
                        f"{run.env}; evaluation ignored")
        return
    expected = suite_names(run.env)
    found = list(dict.fromkeys(episodes["suite"]))
    unknown = [s for s in found if s not in expected]
    if unknown:
        problems.append(f"{run.name}: evaluated on unknown suite(s) {', '.join(unknown)} (the suites of "
                        f"{run.env}: {', '.join(expected)}); those rows are ignored")
        episodes = episodes[episodes["suite"].isin(expected)]
    absent = [s for s in expected if s not in found]
    if absent:
        problems.append(f"{run.name}: not evaluated on suite(s) {', '.join(absent)}; re-run `pvm-mbrl evaluate "
                        f"{run.path}` (it is left out of comparisons that need them)")
    run.episodes = episodes.reset_index(drop=True)
    if files.analysis.exists():
        run.analysis = read_json(files.analysis)
        if run.analysis is None:
            problems.append(f"{run.name}: {files.analysis.name} is unreadable; re-run evaluate")


def read_run(path: Path, study_dir: Path, problems: list[str]) -> Run | None:
    """One run directory, or None (with a problem line) when it has no usable config."""
    name = path.relative_to(study_dir).as_posix() if path != study_dir else path.name
    files = RunDir(path)
    config_path = files.config
    if not config_path.exists():
        present = [f for f in RUN_FILES if (path / f).exists()]
        problems.append(f"{name}: {config_path.name} is missing (has {', '.join(present)}): a half-written or "
                        f"foreign run "
                        f"directory; skipped")
        return None
    try:
        cfg = OmegaConf.load(config_path)
        env, seed = str(cfg.env.name), int(cfg.seed)
        encoder, finetune, model = model_identity(cfg.encoder)
        suite_names(env)
    except Exception as error:  # noqa: BLE001 - any unreadable config is reported, not fatal
        problems.append(f"{name}: {config_path.name} is unreadable or incomplete ({type(error).__name__}: "
                        f"{error}); skipped")
        return None
    state = "unknown"
    if files.status_path.exists():
        status = files.status()
        state = status.get("state", "unknown")
        if state != "finished":
            problems.append(f"{name}: training is {state} at {status.get('env_steps', '?')} of "
                            f"{status.get('total_steps', '?')} env steps; its curves and evaluation are partial")
    else:
        problems.append(f"{name}: {files.status_path.name} is missing; the training state is unknown")
    job = files.job_record()
    if job.get("state") == "crashed":
        problems.append(f"{name}: its study job crashed ({job.get('error')}); see {name}/{files.job_log.name}")
    run = Run(path, name, cfg, env, encoder, finetune, model, seed, state, files.checkpoint.exists())
    run.metrics, note = read_metrics_table(files)
    if note:
        problems.append(f"{name}: {note}")
    if run.metrics.empty:
        problems.append(f"{name}: {files.metrics_path.name} is missing or empty; no learning or loss curves")
    _read_evaluation(run, problems)
    return run


def without_repeated_seeds(runs: list[Run], problems: list[str]) -> list[Run]:
    """The first run of each (env, model, seed), the others named in ``problems``: a seed counted twice would
    shrink every interval and test."""
    first: dict[tuple[str, str, int], Run] = {}
    for run in runs:
        kept = first.setdefault((run.env, run.model, run.seed), run)
        if kept is not run:
            problems.append(f"{run.name}: the same env, model and seed ({run.seed}) as {kept.name}; left out so that "
                            f"no seed counts twice (move one of them out of the study directory)")
    return list(first.values())


def read_study(study_dir: str | Path) -> Study:
    """Every run under ``study_dir``; ValueError when it is not a directory or holds no run."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise ValueError(f"study directory {study_dir} does not exist or is not a directory")
    problems: list[str] = []
    runs = [run for path in find_run_dirs(study_dir) if (run := read_run(path, study_dir, problems)) is not None]
    runs = without_repeated_seeds(runs, problems)
    if not runs:
        raise ValueError(f"no usable run directory under {study_dir} (a run directory holds a config and "
                         f"metrics as `pvm-mbrl train` writes them)" + (f"; {'; '.join(problems)}"
                                                                                if problems else ""))
    return Study(study_dir, runs, problems)
