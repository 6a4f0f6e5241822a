"""Reading a study directory: every run directory under it, what each holds, and what is wrong with it.

A study is any directory tree whose run directories (those holding ``config.yaml``, ``metrics.jsonl``,
``checkpoint.pt`` or ``status.json``, as ``pvm-mbrl train`` writes them) are the runs to compare. Reading never
fails on one bad run: each problem becomes a line naming the run and what is missing, the run is kept for whatever
it still has (curves without an evaluation, an evaluation of a run still training) or left out when nothing of it
can be used, and the report covers the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from pvm_mbrl.evaluation.suites import (
    ANALYSIS_FILE,
    EPISODES_FILE,
    STUDY_TABLE,
    TABLE_COLUMNS,
    evaluation_dir,
    model_identity,
    suite_names,
)
from pvm_mbrl.study.state import JOB_FILE, JOB_LOG, read_json
from pvm_mbrl.training.checkpoint import CHECKPOINT_NAME

RUN_FILES = ("config.yaml", "metrics.jsonl", CHECKPOINT_NAME, "status.json")
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


def find_run_dirs(study_dir: Path) -> list[Path]:
    """Directories under ``study_dir`` holding any run file (not looking inside a run directory, nor inside hidden
    directories, where a study keeps launcher logs and discarded half-written runs)."""
    found = []

    def visit(directory: Path) -> None:
        if any((directory / name).exists() for name in RUN_FILES):
            found.append(directory)
            return
        for child in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
            visit(child)

    visit(study_dir)
    return found


def read_metrics_file(path: Path) -> tuple[pd.DataFrame, str | None]:
    """A ``metrics.jsonl`` as a table, tolerating a half-written last line; returns ``(table, note)``."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records, bad = [], []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            bad.append(number)
    note = None
    if bad:
        where = "its last line is half-written" if bad == [len(lines)] else f"lines {bad[:5]} are not JSON"
        note = f"metrics.jsonl: {where}; used the {len(records)} complete records"
    table = pd.DataFrame(records)
    if len(table) and "step" not in table:
        return pd.DataFrame(), "metrics.jsonl has no 'step' field; no curves"
    return table, note


def _read_evaluation(run: Run, problems: list[str]) -> None:
    """Attach the run's episode table and analysis record, reporting missing or mismatched suites."""
    out = evaluation_dir(run.path)
    if not (out / EPISODES_FILE).exists():
        if run.has_checkpoint:
            problems.append(f"{run.name}: not evaluated yet (no {out.name}/{EPISODES_FILE}); run "
                            f"`pvm-mbrl evaluate {run.path}`")
        else:
            problems.append(f"{run.name}: no {CHECKPOINT_NAME} and no evaluation; it cannot be evaluated, only its "
                            f"curves are used")
        return
    try:
        episodes = pd.read_csv(out / EPISODES_FILE)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        problems.append(f"{run.name}: {out.name}/{EPISODES_FILE} is unreadable ({error}); re-run evaluate")
        return
    missing_columns = [c for c in TABLE_COLUMNS if c != "run" and c not in episodes]
    if missing_columns:
        problems.append(f"{run.name}: {out.name}/{EPISODES_FILE} lacks columns {', '.join(missing_columns)}; "
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
    if (out / ANALYSIS_FILE).exists():
        run.analysis = json.loads((out / ANALYSIS_FILE).read_text())


def read_run(path: Path, study_dir: Path, problems: list[str]) -> Run | None:
    """One run directory, or None (with a problem line) when it has no usable config."""
    name = path.relative_to(study_dir).as_posix() if path != study_dir else path.name
    config_path = path / "config.yaml"
    if not config_path.exists():
        present = [f for f in RUN_FILES if (path / f).exists()]
        problems.append(f"{name}: config.yaml is missing (has {', '.join(present)}): a half-written or foreign run "
                        f"directory; skipped")
        return None
    try:
        cfg = OmegaConf.load(config_path)
        env, seed = str(cfg.env.name), int(cfg.seed)
        encoder, finetune, model = model_identity(cfg.encoder)
        suite_names(env)
    except Exception as error:  # noqa: BLE001 - any unreadable config is reported, not fatal
        problems.append(f"{name}: config.yaml is unreadable or incomplete ({type(error).__name__}: {error}); skipped")
        return None
    state = "unknown"
    status_path = path / "status.json"
    if status_path.exists():
        status = json.loads(status_path.read_text())
        state = status.get("state", "unknown")
        if state != "finished":
            problems.append(f"{name}: training is {state} at {status.get('env_steps', '?')} of "
                            f"{status.get('total_steps', '?')} env steps; its curves and evaluation are partial")
    else:
        problems.append(f"{name}: status.json is missing; the training state is unknown")
    job = read_json(path / JOB_FILE) or {}
    if job.get("state") == "crashed":
        problems.append(f"{name}: its study job crashed ({job.get('error')}); see {name}/{JOB_LOG}")
    run = Run(path, name, cfg, env, encoder, finetune, model, seed, state, (path / CHECKPOINT_NAME).exists())
    metrics_path = path / "metrics.jsonl"
    if metrics_path.exists():
        run.metrics, note = read_metrics_file(metrics_path)
        if note:
            problems.append(f"{name}: {note}")
    if run.metrics.empty:
        problems.append(f"{name}: metrics.jsonl is missing or empty; no learning or loss curves")
    _read_evaluation(run, problems)
    return run


def read_study(study_dir: str | Path) -> Study:
    """Every run under ``study_dir``; ValueError when it is not a directory or holds no run."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise ValueError(f"study directory {study_dir} does not exist or is not a directory")
    problems: list[str] = []
    runs = [run for path in find_run_dirs(study_dir) if (run := read_run(path, study_dir, problems)) is not None]
    if not runs:
        raise ValueError(f"no usable run directory under {study_dir} (a run directory holds config.yaml and "
                         f"metrics.jsonl as `pvm-mbrl train` writes them)" + (f"; {'; '.join(problems)}"
                                                                                if problems else ""))
    return Study(study_dir, runs, problems)
