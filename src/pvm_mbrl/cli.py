"""The ``pvm-mbrl`` command line: ``train`` (with Hydra-style overrides), ``evaluate`` and ``envs``."""

from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  pvm-mbrl train                                   # cpu preset on dmc:cartpole-balance
  pvm-mbrl train model=size12m env.name=dmc:walker-walk seed=1 steps=100000
  pvm-mbrl train run_dir=runs/demo                 # re-running the same command resumes it
  pvm-mbrl evaluate runs/demo --episodes 10
  pvm-mbrl envs preview driving --out driving.png  # one frame per weather suite, side by side
  pvm-mbrl envs normalise driving --episodes 20    # measure random-policy returns into the suite file
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pvm-mbrl", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a DreamerV3 agent (resumes an existing run_dir)")
    train.add_argument("overrides", nargs="*", help="config overrides, e.g. model=size12m seed=1")
    train.add_argument("--print-config", action="store_true", help="print the composed config and exit")
    evaluate = commands.add_parser("evaluate", help="run a checkpoint for evaluation episodes")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--greedy", action="store_true", help="take the policy's mode instead of sampling")
    evaluate.add_argument("--device", default="auto")
    envs = commands.add_parser("envs", help="inspect env families and their shift suites")
    env_commands = envs.add_subparsers(dest="envs_command", required=True)
    preview = env_commands.add_parser("preview", help="write a PNG with one frame per shift suite")
    preview.add_argument("family", help="env family with a suite file, e.g. driving")
    preview.add_argument("--out", default=None, help="PNG path (default: <family>_suites.png)")
    preview.add_argument("--size", type=int, default=128)
    preview.add_argument("--seed", type=int, default=0)
    normalise = env_commands.add_parser("normalise", help="measure each suite's random-policy mean return")
    normalise.add_argument("family")
    normalise.add_argument("--episodes", type=int, default=20)
    normalise.add_argument("--seed", type=int, default=0)
    normalise.add_argument("--dry-run", action="store_true", help="print the returns without writing them")
    args = parser.parse_args(argv)

    try:
        if args.command == "train":
            from pvm_mbrl.training.config import compose_config, to_yaml

            cfg = compose_config(args.overrides)
            if args.print_config:
                print(to_yaml(cfg))
                return 0
            from pvm_mbrl.training.loop import train as run_training

            result = run_training(cfg)
            print(f"[train] finished {cfg.run_dir}: {result}")
        elif args.command == "envs":
            return _envs(args)
        else:
            from pvm_mbrl.evaluation.evaluate import evaluate_run

            summary = evaluate_run(args.run_dir, args.episodes, args.seed, args.greedy, args.device)
            print(f"[evaluate] {summary['run_dir']} at {summary['env_steps']:,} env steps: mean return "
                  f"{summary['mean_return']:.1f} +- {summary['std_return']:.1f} over {args.episodes} episodes")
    except (ValueError, FileNotFoundError) as error:
        print(f"pvm-mbrl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


def _envs(args: argparse.Namespace) -> int:
    if args.envs_command == "preview":
        from pvm_mbrl.envs.preview import preview

        print(f"[envs] wrote {preview(args.family, args.out, args.size, args.seed)}")
    else:
        from pvm_mbrl.envs.suites import load_suites, measure_random_returns

        results = measure_random_returns(args.family, args.episodes, args.seed, write=not args.dry_run)
        for name, (mean, std) in results.items():
            print(f"[envs] {args.family}:{name} random-policy return {mean:.2f} +- {std:.2f} "
                  f"({args.episodes} episodes)")
        if not args.dry_run:
            print(f"[envs] stored in {load_suites(args.family).path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
