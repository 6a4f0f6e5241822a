"""The ``pvm-mbrl`` command line: ``train`` (with Hydra-style overrides) and ``evaluate``."""

from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  pvm-mbrl train                                   # cpu preset on dmc:cartpole-balance
  pvm-mbrl train model=size12m env.name=dmc:walker-walk seed=1 steps=100000
  pvm-mbrl train run_dir=runs/demo                 # re-running the same command resumes it
  pvm-mbrl evaluate runs/demo --episodes 10
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


if __name__ == "__main__":
    sys.exit(main())
