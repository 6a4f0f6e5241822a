"""Runs side by side or one after another? Wall time of two real ``pvm-mbrl train`` runs on this machine, done
two ways, in one invocation (the choice behind a study preset's ``launcher``):

    python benchmarks/parallel_runs.py                          # 2 x dmc:walker-stand, cpu preset, 1,000 env steps
    python benchmarks/parallel_runs.py --steps 2000 encoder=efficientnet_lite0

- ``sequential``: one run, then the other, each with every core (``threads=0``), as ``hydra/launcher=basic``;
- ``parallel``: both at once, one process each with ``cores / 2`` threads, as ``hydra/launcher=joblib
  hydra.launcher.n_jobs=2``.

Each way starts fresh run directories under a temporary folder, so imports, env start-up and the first updates
count as they do in a study. The ratio ``sequential / parallel`` > 1 means running side by side pays. The order of
the ways alternates over ``--rounds`` (sequential, parallel, parallel, sequential, ...) to spread drift.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAYS = ("sequential", "parallel")


def train_command(run_dir: Path, seed: int, threads: int, steps: int, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "pvm_mbrl.cli", "train", "env.name=dmc:walker-stand", "model=cpu",
            f"steps={steps}", f"seed={seed}", f"threads={threads}", f"run_dir={run_dir}", f"log_every={steps}",
            f"eval_every={10 * steps}", f"checkpoint_every={steps}", *overrides]


def run_way(way: str, root: Path, steps: int, overrides: list[str], cores: int) -> float:
    """Seconds for both runs done ``way``; raises naming the run that failed."""
    commands = [train_command(root / f"{way}-seed{seed}", seed, cores // 2 if way == "parallel" else 0, steps,
                              overrides) for seed in (0, 1)]
    root.mkdir(parents=True, exist_ok=True)
    logs = [root / f"{way}-seed{seed}.log" for seed in (0, 1)]  # files, not pipes: a full pipe would stall a run
    start = time.perf_counter()
    with open(logs[0], "w") as first, open(logs[1], "w") as second:
        def launch(k: int) -> subprocess.Popen:
            return subprocess.Popen(commands[k], stdout=subprocess.DEVNULL, stderr=(first, second)[k])

        if way == "parallel":
            processes = [launch(0), launch(1)]
            codes = [process.wait() for process in processes]
        else:
            codes = [launch(k).wait() for k in (0, 1)]
    for command, code, log in zip(commands, codes, logs, strict=True):
        if code:
            raise RuntimeError(f"{' '.join(command)} failed (exit {code}): {log.read_text()[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="env steps per run")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each way")
    parser.add_argument("overrides", nargs="*", help="extra training overrides for every run")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    if cores < 2:
        parser.error(f"side by side needs at least 2 cores; this machine has {cores}")
    order = [way for k in range(args.rounds) for way in (WAYS if k % 2 == 0 else WAYS[::-1])]
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory(prefix="pvm-mbrl-parallel-") as tmp:
        for k, way in enumerate(order):
            seconds[way].append(run_way(way, Path(tmp) / str(k), args.steps, args.overrides, cores))
            print(f"[parallel_runs] {way}: {seconds[way][-1]:,.0f} s for two runs of {args.steps:,} env steps",
                  flush=True)
    best = {way: min(times) for way, times in seconds.items()}
    print(f"\n{cores} cores; two runs of {args.steps:,} env steps ({' '.join(args.overrides) or 'defaults'}):")
    print("| way | threads per run | best s | all s |\n|---|---|---|---|")
    for way in WAYS:
        threads = cores // 2 if way == "parallel" else cores
        print(f"| {way} | {threads} | {best[way]:,.0f} | {', '.join(f'{s:,.0f}' for s in seconds[way])} |")
    print(f"sequential / parallel (best): {best['sequential'] / best['parallel']:.2f}x")


if __name__ == "__main__":
    main()
