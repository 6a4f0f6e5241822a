"""One full update (world model + actor-critic) of this checkout against another checkout of pvm-mbrl.

    git worktree add /tmp/pvm-base 9aed354
    python benchmarks/versus_commit.py --baseline /tmp/pvm-base --preset cpu --batch 16 --length 16

Each side runs in a fresh process (``PYTHONPATH=<checkout>/src``), builds the agent from its own config with
the same overrides (``--this-set`` adds some for this checkout only, e.g. ``compile=default``, which the
baseline lacks), and times ``Agent.train_step`` on the same synthetic batch: 2 warm-up updates (which also
compile), then
``--updates`` timed ones. Sides alternate (A B, B A, ...) over ``--rounds`` rounds so drift on a shared
machine hits both alike. Prints min and median ms per side and the baseline / this ratio. This checkout's
batch carries the replay-context latents (T + 1 steps, as training replays them) when its config enables it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np, torch
from pvm_mbrl.dreamer.agent import Agent
from pvm_mbrl.training.allocator import retain_freed_memory
from pvm_mbrl.training.config import compose_config

args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
torch.manual_seed(0)
cfg = compose_config(args["overrides"])
size, batch, length, action_dim = cfg.env.size, cfg.batch_size, cfg.batch_length, 6
agent = Agent(cfg, {"image_size": size, "vectors": {}}, action_dim, False, "cpu")
retain_freed_memory()
context = int(cfg.get("replay_context", 0))
steps = length + context
rng = np.random.default_rng(0)
is_first = np.zeros((batch, steps), bool)
is_first[:, 0] = True
data = {"image": rng.integers(0, 255, (batch, steps, size, size, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (batch, steps, action_dim)).astype(np.float32),
        "reward": rng.normal(size=(batch, steps)).astype(np.float32),
        "is_first": is_first, "is_last": np.zeros((batch, steps), bool), "is_terminal": np.zeros((batch, steps), bool)}
if context:
    data["latent_deter"] = rng.uniform(-1, 1, (batch, steps, cfg.model.deter)).astype(np.float16)
    data["latent_stoch"] = rng.integers(0, cfg.model.classes, (batch, steps, cfg.model.stoch)).astype(np.uint8)
times = []
for i in range(2 + args["updates"]):
    start = time.perf_counter()
    agent.train_step(data)
    if i >= 2:
        times.append(1000 * (time.perf_counter() - start))
print("RESULT " + json.dumps(times))
"""


def run_side(checkout: Path, payload: dict) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "OMP_NUM_THREADS": str(payload["threads"])}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], env=env, capture_output=True, text=True,
                         check=False)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise RuntimeError(f"update in {checkout} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="another pvm-mbrl checkout (e.g. a worktree)")
    parser.add_argument("--preset", default="cpu", help="model preset (model=...)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--precision", default="fp32", choices=("bf16", "fp32"),
                        help="the same on both sides (older checkouts know no 'auto')")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--updates", type=int, default=5, help="timed updates per process")
    parser.add_argument("--rounds", type=int, default=2, help="process pairs, alternating the order")
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for both sides (key=value)")
    parser.add_argument("--this-set", nargs="*", default=[],
                        help="overrides for this checkout only, for settings the baseline lacks (e.g. compile=default)")
    args = parser.parse_args()
    if not (args.baseline / "src" / "pvm_mbrl").is_dir():
        parser.error(f"--baseline {args.baseline} is not a pvm-mbrl checkout (no src/pvm_mbrl)")
    overrides = [f"model={args.preset}", f"batch_size={args.batch}", f"batch_length={args.length}",
                 f"precision={args.precision}", "env.size=64", *args.set]
    sides = {"baseline": args.baseline.resolve(), "this": HERE}
    payloads = {name: {"overrides": overrides + (args.this_set if name == "this" else []), "threads": args.threads,
                       "updates": args.updates} for name in sides}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for round_index in range(args.rounds):
        order = list(sides) if round_index % 2 == 0 else list(sides)[::-1]
        for name in order:
            times[name] += run_side(sides[name], payloads[name])
            print(f"[versus] round {round_index + 1}/{args.rounds} {name}: "
                  f"median {statistics.median(times[name]):,.0f} ms so far", flush=True)
    print(f"\n{args.preset} {args.batch}x{args.length} {args.precision}, {args.threads} threads, "
          f"{args.rounds} x {args.updates} updates per side"
          + (f"; this checkout also {' '.join(args.this_set)}" if args.this_set else ""))
    print("| side | checkout | min ms | median ms |\n|---|---|---|---|")
    for name, path in sides.items():
        print(f"| {name} | {path} | {min(times[name]):,.0f} | {statistics.median(times[name]):,.0f} |")
    base, this = times["baseline"], times["this"]
    print(f"baseline / this: min {min(base) / min(this):.2f}x, median "
          f"{statistics.median(base) / statistics.median(this):.2f}x")


if __name__ == "__main__":
    main()
