"""Does the agent learn as DreamerV3 does? Tasks x seeds from 64x64 pixels, against the published bands.

    python benchmarks/learning.py                                   # cartpole-balance and walker-stand, seeds 0-2
    python benchmarks/learning.py --tasks dmc:walker-stand --seeds 0 --parallel 1 --threads 2
    python benchmarks/learning.py --preset size12m --steps 100000 --device cuda --parallel 1   # on a GPU
    python benchmarks/learning.py --report-only                     # tables and plot from the runs so far

Each task x seed is an ordinary, resumable ``pvm-mbrl train`` run under ``--root`` (one process each,
``--parallel`` at a time with ``--threads`` torch threads each); re-running the command continues every run
where it stopped and skips finished ones. The parent prints each run's progress every minute.

The measure is DreamerV3's own (``scores/dmc_vision-dreamerv3.json``): the training-episode score averaged
over the 25k env steps ending at a mark. Runs log training-episode returns every 1,000 env steps (one DMC
episode at action repeat 2), and a window's value is the mean of the logged values inside it. The table puts
each seed's value beside the published mean (min-max over seeds) for the same window; ``learning.png`` draws
every seed's curve over the published bands. Results go to ``<root>/learning.json`` (each seed's window means and
curve) and ``learning.png``. ``--merge FILE`` takes the seeds an earlier ``learning.json`` recorded for runs that
have no directory under ``--root`` (a run measured on another machine), so one table and plot can hold them all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from pvm_mbrl.rundir import RunDir  # noqa: E402
from pvm_mbrl.training.config import COMPILE_MODES  # noqa: E402

# DreamerV3's published DMC-vision bands: mean (min, max) over seeds of the training-episode score averaged
# over the window (start, end] env steps (shared/DESIGN.md, from the official scores file).
WINDOWS = ((0, 25_000), (25_000, 50_000), (50_000, 100_000))
PUBLISHED = {
    "dmc:cartpole-balance": {WINDOWS[0]: (299, 250, 320), WINDOWS[1]: (555, 467, 627), WINDOWS[2]: (934, 840, 978)},
    "dmc:walker-stand": {WINDOWS[0]: (302, 241, 351), WINDOWS[1]: (625, 536, 711), WINDOWS[2]: (904, 862, 927)},
}
TARGET_WINDOW = WINDOWS[1]  # the CPU targets: every seed >= the published minimum, median >= the published mean
LOG_EVERY = 1_000


@dataclass
class Run:
    task: str
    seed: int
    run_dir: Path

    @property
    def name(self) -> str:
        return f"{self.task.split(':')[-1]}-seed{self.seed}"


def window_mean(curve: list[tuple[int, float]], window: tuple[int, int]) -> float | None:
    """Mean of the values logged at steps in (start, end]; None when the run has not reached ``end``."""
    start, end = window
    if not curve or curve[-1][0] < end:
        return None
    values = [value for step, value in curve if start < step <= end]
    return statistics.fmean(values) if values else None


def read_curve(run_dir: Path, key: str = "episode/return") -> list[tuple[int, float]]:
    """(env step, value) of ``key`` from a run's ``metrics.jsonl`` (none before the run has written one)."""
    return RunDir(run_dir).metric(key)


def train_command(run: Run, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "pvm_mbrl.cli", "train", f"model={args.preset}", f"env.name={run.task}",
            f"seed={run.seed}", f"steps={args.steps}", f"train_ratio={args.train_ratio}", f"threads={args.threads}",
            f"device={args.device}", f"run_dir={run.run_dir}", f"log_every={LOG_EVERY}", "eval_every=10000",
            "eval_episodes=2", "checkpoint_every=5000", f"compile={args.compile}", *args.overrides]


def launch(runs: list[Run], args: argparse.Namespace) -> list[str]:
    """Train every unfinished run, ``args.parallel`` at a time; returns the names of runs that failed."""
    pending = [r for r in runs if not RunDir(r.run_dir).trained(args.steps)]
    active: dict[str, tuple[Run, subprocess.Popen, float]] = {}
    failed: list[str] = []
    last_report = 0.0
    while pending or active:
        while pending and len(active) < args.parallel:
            run = pending.pop(0)
            run.run_dir.mkdir(parents=True, exist_ok=True)
            log = open(run.run_dir / "learning.log", "a")  # noqa: SIM115 - closed when the process ends
            active[run.name] = (run, subprocess.Popen(train_command(run, args), stdout=log, stderr=log), time.time())
            print(f"[learning] started {run.name} ({run.run_dir})", flush=True)
        for name, (run, process, _) in list(active.items()):
            if process.poll() is not None:
                del active[name]
                if process.returncode:
                    failed.append(name)
                    print(f"[learning] {name} failed (exit {process.returncode}); see {run.run_dir / 'learning.log'}",
                          flush=True)
                else:
                    print(f"[learning] {name} done", flush=True)
        if time.time() - last_report >= 60 and active:
            last_report = time.time()
            for run, _, started in active.values():
                status = RunDir(run.run_dir).status()
                print(f"[learning] {run.name}: {status.get('env_steps', 0):,}/{args.steps:,} env steps "
                      f"({time.time() - started:,.0f} s this launch); progress in {run.run_dir / 'learning.log'}",
                      flush=True)
        time.sleep(2)
    return failed


def window_key(window: tuple[int, int]) -> str:
    return f"{window[0]}-{window[1]}"


def seed_result(curve: list[tuple[int, float]]) -> dict:
    """One seed's entry in ``learning.json``: its window means and its curve."""
    return {**{window_key(w): window_mean(curve, w) for w in WINDOWS}, "curve": [list(point) for point in curve]}


def read_recorded(path: Path) -> dict[tuple[str, int], dict]:
    """(task, seed) -> the seed's entry in an earlier ``learning.json``: its window means, and its curve where
    that file kept one (files written before curves were kept hold only the means)."""
    try:
        summary = json.loads(path.read_text())
        return {(task, int(seed)): entry for task, value in summary.items() for seed, entry in value["seeds"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SystemExit(f"[learning] --merge {path}: not a learning.json this benchmark wrote ({error})") from None


def seed_results(runs: list[Run], recorded: dict[tuple[str, int], dict]) -> dict[tuple[str, int], dict]:
    """Each run's entry: from its run directory where it has logged anything, else the recorded one, else empty."""
    results = {}
    for run in runs:
        curve = read_curve(run.run_dir)
        key = (run.task, run.seed)
        results[key] = recorded[key] if not curve and key in recorded else seed_result(curve)
    return results


def summarise(runs: list[Run], results: dict[tuple[str, int], dict]) -> dict:
    """Per task: each seed's window means (and curve) and the published bands; the CPU targets where judged."""
    summary: dict = {}
    for task in dict.fromkeys(r.task for r in runs):
        seeds = {r.seed: results[r.task, r.seed] for r in runs if r.task == task}
        key = window_key(TARGET_WINDOW)
        reached = [v[key] for v in seeds.values() if v.get(key) is not None]
        published = PUBLISHED.get(task, {})
        entry = {"seeds": seeds, "published": {window_key(w): band for w, band in published.items()}}
        if reached and TARGET_WINDOW in published:
            mean, low, _ = published[TARGET_WINDOW]
            entry["target"] = {"window": key, "seed_minimum": low, "median_target": mean,
                               "every_seed_at_or_above_minimum": all(v >= low for v in reached),
                               "median": statistics.median(reached),
                               "median_at_or_above_mean": statistics.median(reached) >= mean,
                               "seeds_judged": len(reached), "seeds": len(seeds)}
        summary[task] = entry
    return summary


def print_tables(summary: dict, args: argparse.Namespace) -> None:
    print(f"\nDreamerV3 {args.preset}, train ratio {args.train_ratio}, 64x64 pixels, action repeat 2: training-episode "
          "return averaged over each window (DreamerV3's scores convention); '-' = not reached")
    for task, entry in summary.items():
        print(f"\n{task}")
        seeds = " | ".join(f"seed {s}" for s in entry["seeds"])
        print(f"| window (env steps) | {seeds} | published mean (min-max) |")
        print("|---" * (len(entry["seeds"]) + 2) + "|")
        for a, b in WINDOWS:
            key = window_key((a, b))
            cells = [f"{v[key]:.0f}" if v.get(key) is not None else "-" for v in entry["seeds"].values()]
            band = entry["published"].get(key)
            published = f"{band[0]} ({band[1]}-{band[2]})" if band else "-"
            print(f"| ({a // 1000}k, {b // 1000}k] | " + " | ".join(cells) + f" | {published} |")
        target = entry.get("target")
        if target:
            print(f"target ({target['window']}): every seed >= {target['seed_minimum']}: "
                  f"{target['every_seed_at_or_above_minimum']}; median {target['median']:.0f} >= "
                  f"{target['median_target']}: {target['median_at_or_above_mean']} "
                  f"({target['seeds_judged']} of {target['seeds']} seeds reached the window's end)")


def plot(summary: dict, path: Path) -> None:
    """Per task, every seed's curve (thin) and window means (thick) over the published bands; a seed recorded
    without its curve shows its window means only."""
    fig, axes = plt.subplots(1, len(summary), figsize=(6 * len(summary), 4), squeeze=False)
    for ax, (task, entry) in zip(axes[0], summary.items(), strict=True):
        for (a, b), (mean, low, high) in PUBLISHED.get(task, {}).items():
            ax.fill_between([a, b], low, high, color="k", alpha=0.12, linewidth=0)
            ax.plot([a, b], [mean, mean], "k--", linewidth=1)
        for seed, result in entry["seeds"].items():
            windows = [(w, result[window_key(w)]) for w in WINDOWS if result.get(window_key(w)) is not None]
            if not windows:
                continue
            curve = result.get("curve")
            if curve:  # the thin curve carries the label; the window bars take its colour
                label = None
                color = ax.plot(*zip(*curve, strict=True), linewidth=1, label=f"seed {seed}")[0].get_color()
            else:  # the first window bar carries the label and sets the colour for the others
                label, color = f"seed {seed} (window means only)", None
            for (a, b), value in windows:
                color = ax.plot([a, b], [value, value], linewidth=2.5, color=color, label=label)[0].get_color()
                label = None
        ax.set(xlabel="env steps", ylabel="training-episode return", title=f"{task} (band: DreamerV3 published)",
               ylim=(0, 1000))
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="dmc:cartpole-balance,dmc:walker-stand")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=50_000, help="env steps per run (action repeat 2)")
    parser.add_argument("--train-ratio", type=int, default=32,
                        help="replayed steps per agent step (32: the ratio whose 50k-step runs fit ~75 min here)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at once (one process each)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", default="default", choices=COMPILE_MODES,
                        help="torch.compile of the update (pays for itself within the first ~1,500 updates)")
    parser.add_argument("--root", type=Path, default=Path("runs/benchmark-learning"))
    parser.add_argument("--report-only", action="store_true", help="no training: tables and plot from the runs")
    parser.add_argument("--merge", type=Path,
                        help="an earlier learning.json: its seeds fill in (and are not trained again) where no run "
                        "directory is under --root")
    parser.add_argument("overrides", nargs="*", help="extra config overrides for every run")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in PUBLISHED]
    if unknown:
        print(f"[learning] no published band for {', '.join(unknown)} (known: {', '.join(PUBLISHED)}): "
              "their runs are trained and plotted without one", flush=True)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        parser.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")
    if args.parallel < 1 or args.threads < 1:
        parser.error("--parallel and --threads must be >= 1")
    root = args.root / f"{args.preset}-ratio{args.train_ratio}"
    # Seed-major order, so the first runs to finish cover every task.
    runs = [Run(task, seed, root / task.replace(":", "-") / f"seed{seed}") for seed in seeds for task in tasks]
    recorded = read_recorded(args.merge) if args.merge else {}
    # A seed recorded elsewhere is not trained again unless its run directory is here.
    to_train = [r for r in runs if (r.task, r.seed) not in recorded or r.run_dir.exists()]
    failed = [] if args.report_only else launch(to_train, args)
    summary = summarise(runs, seed_results(runs, recorded))
    print_tables(summary, args)
    root.mkdir(parents=True, exist_ok=True)
    (root / "learning.json").write_text(json.dumps(summary, indent=1))
    plot(summary, root / "learning.png")
    print(f"\nresults: {root / 'learning.json'}, plot: {root / 'learning.png'}")
    if failed:
        print(f"[learning] failed runs: {', '.join(failed)}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
