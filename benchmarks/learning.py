"""Does the agent learn? DreamerV3 on dmc:cartpole-balance from 64x64 pixels, against a random policy.

    python benchmarks/learning.py --minutes 58         # cpu preset, 58 min of training + ~2 min final evaluation
    python benchmarks/learning.py --preset size12m --steps 100000 --minutes 0 --device cuda   # GPU

Prints evaluation return over env steps next to a random policy's return (measured here) and the
published DreamerV3 curve, then the final checkpoint's return over ``--final-episodes`` episodes, and writes
``learning.png`` into the run directory. Re-running the same
command resumes the run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pvm_mbrl.envs.suites import random_policy_returns_for  # noqa: E402
from pvm_mbrl.evaluation.suites import evaluate_suites  # noqa: E402
from pvm_mbrl.training.config import compose_config  # noqa: E402
from pvm_mbrl.training.logger import read_metrics  # noqa: E402
from pvm_mbrl.training.loop import train  # noqa: E402

# DreamerV3 (Hafner et al. 2023/2025), DMC vision cartpole-balance: mean over seeds.
PUBLISHED = {50_000: 555.0, 100_000: 934.0}
PUBLISHED_RANGE_100K = (840.0, 978.0)
CPU_TARGET = 500.0  # the cpu preset within 60 minutes on 2 cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=100_000, help="env steps (action repeat 2)")
    parser.add_argument("--minutes", type=float, default=60, help="wall-clock limit for training; 0 = none")
    parser.add_argument("--train-ratio", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--final-episodes", type=int, default=10,
                        help="episodes for the final checkpoint's evaluation (sampled actions, as DreamerV3); 0 = none")
    parser.add_argument("overrides", nargs="*", help="extra config overrides")
    args = parser.parse_args()
    run_dir = args.run_dir or f"runs/benchmark-learning/{args.preset}-seed{args.seed}"
    cfg = compose_config([
        f"model={args.preset}", "env.name=dmc:cartpole-balance", f"steps={args.steps}",
        f"train_ratio={args.train_ratio}", f"time_limit_minutes={args.minutes}", f"device={args.device}",
        f"seed={args.seed}", f"run_dir={run_dir}", "eval_every=5000", "eval_episodes=3", "log_every=2500",
        *args.overrides,
    ])
    train(cfg)
    random_return = float(np.mean(random_policy_returns_for(cfg.env, episodes=5, seed=args.seed + 123)))
    curve = read_metrics(Path(run_dir), "eval/return")
    print(f"\nDreamerV3 {args.preset} on dmc:cartpole-balance (64x64 pixels), train ratio {args.train_ratio}")
    print(f"random policy return: {random_return:.1f} (5 episodes)")
    print(f"{'env steps':>10} {'eval return':>12} {'x random':>9} {'published':>10}")
    for step, value in curve:
        published = PUBLISHED.get(step, float("nan"))
        print(f"{step:>10,} {value:>12.1f} {value / random_return:>9.2f} {published:>10.0f}")
    final = curve[-1][1] if curve else float("nan")
    print(f"last periodic evaluation: {final:.1f} = {final / random_return:.2f}x random; "
          f"published 100k band {PUBLISHED_RANGE_100K}")
    if args.final_episodes:  # the periodic evaluations use 3 episodes each: too few to judge the end on
        summary = evaluate_suites(run_dir, args.final_episodes, device=args.device, samples=0, frames=0,
                                  forgetting_images=0, log=lambda line: None)
        result = next(iter(summary["suites"].values()))
        print(f"final checkpoint ({summary['env_steps']:,} env steps): {result['mean_return']:.1f} +- "
              f"{result['std_return']:.1f} over {args.final_episodes} episodes = "
              f"{result['mean_return'] / random_return:.2f}x random (target on CPU: >= {CPU_TARGET:.0f})")
    fig, ax = plt.subplots(figsize=(6, 4))
    if curve:
        ax.plot(*zip(*curve, strict=True), marker="o", label=f"pvm-mbrl {args.preset}")
    ax.plot(list(PUBLISHED), list(PUBLISHED.values()), "k--", marker="s", label="DreamerV3 published")
    ax.axhline(random_return, color="grey", linestyle=":", label="random policy")
    ax.set(xlabel="env steps", ylabel="evaluation return", title="dmc:cartpole-balance from pixels")
    ax.legend()
    fig.tight_layout()
    fig.savefig(Path(run_dir) / "learning.png", dpi=120)
    print(f"plot: {Path(run_dir) / 'learning.png'}")


if __name__ == "__main__":
    main()
