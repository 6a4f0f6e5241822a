"""A run directory: the one place its layout, its records and its states are defined.

Everything that reads or writes a run directory (training, evaluation, the study, the report) goes through
``RunDir``; no other module spells a file name of it::

    RUN_DIR/
      config.yaml         the composed config (a resume must match it)
      status.json         the trainer's state (``TrainerState``), env steps, updates
      metrics.jsonl       one JSON record per log interval, appended (a resumed run re-logs after its checkpoint)
      tensorboard/        the same scalars as TensorBoard events
      replay/             replay chunk files
      checkpoint.pt       the last checkpoint
      job.json, job.log   a study job's record (attempts, crash, evaluation settings) and everything it printed
      evaluations/        episodes.csv (TABLE_COLUMNS), analysis.json, samples_<suite>.npz, step<N>.json

Readers are tolerant: a torn last line of ``metrics.jsonl``, undecodable bytes in one line, or a missing record
never hide the rest. This module needs neither torch nor an env, so ``study status`` and ``report`` start fast.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pvm_mbrl.atomic import atomic_write, atomic_write_text
from pvm_mbrl.locks import LOCK_NAME

CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
ENV_STEPS_PER_S = "speed/env_steps_per_s"  # a metric of every training log line: what progress lines and ETAs use
CHECKPOINT_FILE = "checkpoint.pt"
REPLAY_DIR = "replay"
JOB_FILE = "job.json"
JOB_LOG = "job.log"
EVALUATION_DIR = "evaluations"
EPISODES_FILE = "episodes.csv"
ANALYSIS_FILE = "analysis.json"
# Files whose presence makes a directory a run directory (as ``pvm-mbrl train`` writes them).
RUN_FILES = (CONFIG_FILE, METRICS_FILE, CHECKPOINT_FILE, STATUS_FILE)
# The tidy evaluation table: one row per run x suite x episode (``run`` is added when a study's runs are joined).
TABLE_COLUMNS = ("run", "encoder", "finetune", "model", "env", "seed", "suite", "episode", "episode_seed",
                 "env_steps", "return", "length")


class TrainerState(str, Enum):
    """What ``status.json`` says of training."""

    RUNNING = "running"          # a checkpoint written while training goes on
    STOPPED = "stopped"          # the time limit ended the process before ``steps``
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: checkpointed, resumable
    FINISHED = "finished"        # trained to ``steps``
    FAILED = "failed"            # stopped by an error it could name (divergence, disk full): see ``reason``


def read_json(path: Path) -> dict | None:
    """A JSON record, or None when it is missing or unreadable (records are written atomically; a foreign edit or a
    disk error is not)."""
    try:
        value = json.loads(Path(path).read_text(errors="replace"))
    except (OSError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def log_tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` non-empty lines of a log (reading only its end, however long it grew)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 16_384))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.replace("\r", "\n").splitlines() if line.strip()][-lines:]


def decode_json_lines(data: bytes) -> tuple[list[dict], list[int]]:
    """The JSON object of every line of ``data`` and the (1-based) numbers of lines that did not decode: a torn
    write, undecodable bytes or a foreign edit costs that line only."""
    records, bad = [], []
    for number, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            bad.append(number)
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad.append(number)
    return records, bad


def describe_bad_lines(bad: Sequence[int], last_line: int, kept: int) -> str | None:
    """A note on the lines of ``metrics.jsonl`` that were skipped, or None when none were."""
    if not bad:
        return None
    where = "its last line is half-written" if list(bad) == [last_line] else \
        f"line(s) {', '.join(map(str, bad[:5]))}{' ...' if len(bad) > 5 else ''} do not decode"
    return f"{METRICS_FILE}: {where}; used the {kept} complete records"


@dataclass(frozen=True)
class RunDir:
    """The files of one run directory and the records in them."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # ------------------------------------------------------------ paths
    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def status_path(self) -> Path:
        return self.path / STATUS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def replay(self) -> Path:
        return self.path / REPLAY_DIR

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def job_record_path(self) -> Path:
        return self.path / JOB_FILE

    @property
    def job_log(self) -> Path:
        return self.path / JOB_LOG

    @property
    def evaluations(self) -> Path:
        return self.path / EVALUATION_DIR

    @property
    def episodes(self) -> Path:
        return self.evaluations / EPISODES_FILE

    @property
    def analysis(self) -> Path:
        return self.evaluations / ANALYSIS_FILE

    def samples(self, suite: str) -> Path:
        return self.evaluations / f"samples_{suite}.npz"

    def evaluation_summary(self, env_steps: int) -> Path:
        return self.evaluations / f"step{env_steps}.json"

    # ------------------------------------------------------------ states
    def exists(self) -> bool:
        return self.path.is_dir()

    def is_run(self) -> bool:
        """Whether training ever wrote here (``find_run_dirs`` looks for these files)."""
        return any((self.path / name).exists() for name in RUN_FILES)

    def training_output(self) -> list[Path]:
        """Everything here but the lock and the study job's own record and log (those outlive a discarded run)."""
        if not self.exists():
            return []
        return [p for p in self.path.iterdir() if p.name not in (LOCK_NAME, JOB_FILE, JOB_LOG)]

    def records(self) -> list[Path]:
        """Everything here but the lock and what only further training reads (checkpoints, the one before the last
        included, and replay): a finished run's results, report and state are read from these alone (``study
        export`` copies them)."""
        if not self.exists():
            return []
        checkpoints = Path(CHECKPOINT_FILE).stem
        return [p for p in self.path.iterdir()
                if p.name not in (LOCK_NAME, REPLAY_DIR) and not p.name.startswith(checkpoints)]

    def has_run_files(self) -> bool:
        return bool(self.training_output())

    def status(self) -> dict:
        """``status.json`` (``{}`` when missing or unreadable)."""
        return read_json(self.status_path) or {}

    def trained_steps(self) -> int:
        return int(self.status().get("env_steps", 0))

    def trained(self, total_steps: int) -> bool:
        """Training finished at (or beyond) ``total_steps``: the one definition every part uses."""
        status = self.status()
        return status.get("state") == TrainerState.FINISHED and int(status.get("env_steps", 0)) >= total_steps

    def write_status(self, state: TrainerState, env_steps: int, total_steps: int, updates: int, time: float,
                     **extra: Any) -> None:
        record = {"state": TrainerState(state).value, "env_steps": env_steps, "total_steps": total_steps,
                  "updates": updates, "time": time, **extra}
        atomic_write_text(self.status_path, json.dumps(record))

    def job_record(self) -> dict:
        return read_json(self.job_record_path) or {}

    def write_job_record(self, record: dict) -> None:
        atomic_write_text(self.job_record_path, json.dumps(record, indent=1))

    def updated(self) -> float | None:
        """When the run last wrote progress (epoch seconds), or None."""
        paths = (self.metrics_path, self.status_path, self.job_record_path)
        return max((p.stat().st_mtime for p in paths if p.exists()), default=None)

    # ------------------------------------------------------------ metrics
    def metric_records(self) -> tuple[list[dict], str | None]:
        """Every decodable record of ``metrics.jsonl`` and a note on skipped lines (``[]`` when missing)."""
        try:
            data = self.metrics_path.read_bytes()
        except FileNotFoundError:
            return [], None
        records, bad = decode_json_lines(data)
        return records, describe_bad_lines(bad, len(data.splitlines()), len(records))

    def metric(self, key: str) -> list[tuple[int, float]]:
        """``(step, value)`` of one metric, in file order."""
        return [(int(r["step"]), float(r[key])) for r in self.metric_records()[0] if key in r and "step" in r]

    def _last_metric_records(self) -> list[dict]:
        """The decodable records among the last lines of ``metrics.jsonl`` (cheap on a file still growing)."""
        return decode_json_lines("\n".join(log_tail(self.metrics_path, 5)).encode())[0]

    def last_logged_step(self) -> int:
        """The env step of the last complete line of ``metrics.jsonl`` (progress between checkpoints), or 0."""
        for record in reversed(self._last_metric_records()):
            try:
                return int(record["step"])
            except (KeyError, TypeError, ValueError):
                continue
        return 0

    def last_logged_speed(self) -> float | None:
        """Env steps per second over the last logged interval, or None before the first log line."""
        for record in reversed(self._last_metric_records()):
            if isinstance(record.get(ENV_STEPS_PER_S), int | float):
                return float(record[ENV_STEPS_PER_S])
        return None

    def metrics_needs_newline(self) -> bool:
        """Whether the last record was cut by a crash (appends must then start on a fresh line)."""
        try:
            with open(self.metrics_path, "rb") as f:
                f.seek(0, 2)
                if f.tell() == 0:
                    return False
                f.seek(-1, 2)
                return f.read(1) != b"\n"
        except FileNotFoundError:
            return False

    # ------------------------------------------------------------ evaluation records
    def save_samples(self, suite: str, arrays: dict) -> Path:
        import numpy as np

        path = self.samples(suite)
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
        return path

    def load_samples(self, suite: str) -> dict:
        """A suite's recorded latents and frames; FileNotFoundError naming the run and suite when absent."""
        import numpy as np

        path = self.samples(suite)
        if not path.exists():
            raise FileNotFoundError(f"run {self.path} has no latent sample for suite {suite!r} ({path.name}); "
                                    f"re-run `pvm-mbrl evaluate {self.path}`")
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def write_evaluation(self, rows: Sequence[dict], analysis: dict) -> None:
        """The run's tidy episode table (``TABLE_COLUMNS`` without ``run``) and its analysis record."""
        import pandas as pd

        table = pd.DataFrame(list(rows), columns=[c for c in TABLE_COLUMNS if c != "run"])
        atomic_write_text(self.episodes, table.to_csv(index=False))
        atomic_write_text(self.analysis, json.dumps(analysis, indent=1))


def find_run_dirs(study_dir: Path) -> list[Path]:
    """Directories under ``study_dir`` holding any run file (not looking inside a run directory, nor inside hidden
    directories, where a study keeps launcher logs and discarded half-written runs)."""
    found = []

    def visit(directory: Path) -> None:
        if RunDir(directory).is_run():
            found.append(directory)
            return
        for child in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
            visit(child)

    visit(Path(study_dir))
    return found
