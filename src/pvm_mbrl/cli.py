"""The ``pvm-mbrl`` command line: ``study`` (a whole grid: train, evaluate, report), ``train`` (with Hydra-style
overrides), ``evaluate``, ``report`` and ``envs``."""

from __future__ import annotations

import argparse
import os
import signal
import sys

from pvm_mbrl.analysis.report import write_report
from pvm_mbrl.analysis.report_options import ReportOptions
from pvm_mbrl.errors import RunError, interrupt_exit_status
from pvm_mbrl.evaluation.settings import EvaluationSettings
from pvm_mbrl.locks import LockedError
from pvm_mbrl.study.plan import preset_names

EPILOG = """examples:
  pvm-mbrl study quick                             # the whole pipeline, small: studies/quick/report/report.md
  pvm-mbrl study paper --dry-run                   # the paper's 42 runs with their configs and compute
  pvm-mbrl study quick seed=0,1 hydra/launcher=joblib hydra.launcher.n_jobs=2
  pvm-mbrl study status studies/quick              # each run's state and progress
  pvm-mbrl study export studies/quick results/quick  # finished runs' records, no checkpoints: report or resume
  pvm-mbrl train                                   # cpu preset on dmc:cartpole-balance
  pvm-mbrl train model=size12m env.name=dmc:walker-walk seed=1 steps=100000
  pvm-mbrl train run_dir=runs/demo                 # re-running the same command resumes it
  pvm-mbrl evaluate runs/demo --episodes 10        # every shift suite of the run's env, 10 episodes each
  pvm-mbrl report runs                             # runs/report/report.md (+ .html) over every run under runs/
  pvm-mbrl envs preview driving --out driving.png  # one frame per weather suite, side by side
  pvm-mbrl envs normalise driving --episodes 20    # measure random-policy returns into the suite file
  pvm-mbrl envs normalise dmc --task walker-stand  # dmc keeps them per task
"""


REPORT_OPTIONS = ("curve_key", "curve_window", "threshold_window", "loss_window", "permutations", "bootstrap")


def parse_arguments(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Options may also come after overrides or run directories (``study dmc-shift --no-report seed=0``): argparse
    fills a list positional from its first run of words only and calls the later words unrecognised; they are
    appended to it here. An unknown option is still an error."""
    args, rest = parser.parse_known_args(argv)
    words = getattr(args, "overrides", getattr(args, "run_dirs", None))
    unknown = rest if words is None else [word for word in rest if word.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if rest:
        words.extend(rest)
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pvm-mbrl", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    study = commands.add_parser(
        "study", help="run a study (a grid of runs) to its report; `study status DIR` shows its runs, "
             "`study export DIR DEST` copies its finished runs' records",
        description=f"Run every unfinished run of a study preset ({', '.join(preset_names())}, or a YAML file) "
                    "through a Hydra launcher, evaluate each on every suite, write the report. Re-running resumes. "
                    "Overrides: `seed=0,1,2` makes an axis, `steps=5000` changes every run, "
                    "`hydra/launcher=joblib|submitit_slurm|submitit_local|ray` picks the launcher.")
    study.add_argument("preset", nargs="?", default="quick",
                       help=f"{' | '.join(preset_names())} (default: quick) | path/to/study.yaml | status | export")
    study.add_argument("overrides", nargs="*", help="grid and run overrides; with `status`: the study directory; "
                       "with `export`: the study directory and the destination")
    study.add_argument("--dir", default=None, help="study directory (default: studies/<preset>)")
    study.add_argument("--dry-run", action="store_true", help="list the runs, configs and compute; start nothing")
    study.add_argument("--progress-every", type=float, default=60.0, help="seconds between study progress lines")
    study.add_argument("--no-report", action="store_true", help="skip the report at the end")
    study.add_argument("--longest-first", action="store_true",
                       help="start the runs with the most compute left first (by the preset's estimate): finishes "
                            "sooner on a few workers; the default, plan order, finishes whole seeds first")
    train = commands.add_parser("train", help="train a DreamerV3 agent (resumes an existing run_dir)")
    train.add_argument("overrides", nargs="*", help="config overrides, e.g. model=size12m seed=1")
    train.add_argument("--print-config", action="store_true", help="print the composed config and exit")
    evaluate = commands.add_parser("evaluate", help="run checkpoints on every shift suite of their env")
    evaluate.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    defaults = EvaluationSettings()
    evaluate.add_argument("--episodes", type=int, default=defaults.episodes,
                          help="episodes per suite (the paper's 200)")
    evaluate.add_argument("--suites", nargs="+", default=None, help="only these suites (default: all)")
    evaluate.add_argument("--seed", type=int, default=defaults.seed, help="picks another fixed set of episode seeds")
    evaluate.add_argument("--greedy", action="store_true", help="take the policy's mode instead of sampling")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--samples", type=int, default=defaults.samples, help="latents z_t kept per suite")
    evaluate.add_argument("--sample-every", type=int, default=defaults.sample_every, help="keep z_t every N-th step")
    evaluate.add_argument("--frames", type=int, default=defaults.frames,
                          help="observations (+ saliency) kept per suite")
    evaluate.add_argument("--forgetting-images", type=int, default=defaults.forgetting_images,
                          help="digit images for the forgetting measure (default all 1,797; 0 skips it)")
    evaluate.add_argument("--study", default=None, help="also add the rows to STUDY/returns.csv")
    report = commands.add_parser("report", help="write STUDY_DIR/report/report.md and .html over all its runs")
    report.add_argument("study_dir")
    report.add_argument("--out", default=None,
                        help="report directory (default: STUDY_DIR/report), or a .md path: its figures go into the "
                             "folder of the same name")
    # Unset options take the study's own report settings (its study.yaml), else ReportOptions' defaults.
    defaults = ReportOptions()  # the one home of the report's defaults
    report.add_argument("--curve-key", help=f"metric of the learning curves (default: {defaults.curve_key})")
    report.add_argument("--curve-window", type=float,
                        help=f"env steps smoothed in Fig. 2 (default: the study's, else {defaults.curve_window:g})")
    report.add_argument("--threshold-window", type=float, help="smoothing for steps-to-threshold (default: the "
                        f"study's, else {defaults.threshold_window:g})")
    report.add_argument("--loss-window", type=float,
                        help=f"env steps smoothed in Fig. 3 (default: the study's, else {defaults.loss_window:g})")
    report.add_argument("--permutations", type=int, help=f"default: the study's, else {defaults.permutations}")
    report.add_argument("--bootstrap", type=int, help="bootstrap resamples for IQM intervals (default: the study's, "
                        f"else {defaults.bootstrap})")
    envs = commands.add_parser("envs", help="inspect env families and their shift suites")
    env_commands = envs.add_subparsers(dest="envs_command", required=True)
    preview = env_commands.add_parser("preview", help="write a PNG with one frame per shift suite")
    preview.add_argument("family", help="env family with a suite file, e.g. driving")
    preview.add_argument("--out", default=None, help="PNG path (default: <family>_suites.png)")
    preview.add_argument("--size", type=int, default=128)
    preview.add_argument("--seed", type=int, default=0)
    preview.add_argument("--task", default=None, help="task shown (default: the suite file's preview task, else "
                         "the family preset's), e.g. walker-stand")
    normalise = env_commands.add_parser("normalise", help="measure each suite's random-policy mean return")
    normalise.add_argument("family")
    normalise.add_argument("--episodes", type=int, default=20)
    normalise.add_argument("--seed", type=int, default=0)
    normalise.add_argument("--task", default=None, help="task measured (default: the family preset's); families "
                           "with per-task constants (dmc) store them under it")
    normalise.add_argument("--dry-run", action="store_true", help="print the returns without writing them")
    args = parse_arguments(parser, argv)

    try:
        if args.command == "study":
            return _study(args)
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
        elif args.command == "report":
            from pvm_mbrl.study.launch import study_report_options

            given = {key: getattr(args, key) for key in REPORT_OPTIONS if getattr(args, key) is not None}
            md_path, html_path = write_report(args.study_dir, args.out, study_report_options(args.study_dir, given))
            print(f"[report] wrote {md_path} and {html_path}")
        else:
            from pvm_mbrl.evaluation.suites import evaluate_suites

            settings = EvaluationSettings(args.episodes, args.seed, args.greedy, args.samples, args.sample_every,
                                          args.frames, args.forgetting_images)
            for run_dir in args.run_dirs:
                evaluate_suites(run_dir, settings, args.suites, args.device, args.study)
    except (ValueError, FileNotFoundError, LockedError, RunError) as error:
        print(f"pvm-mbrl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # 130 after Ctrl-C, 143 after SIGTERM
        return interrupt_exit_status(interrupt)
    except BrokenPipeError:  # `pvm-mbrl study status DIR | head`: the reader has gone, so nothing is left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 128 + signal.SIGPIPE
    return 0


def _study(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pvm_mbrl.study.launch import StudyOptions, run_study, status_report

    if "=" in args.preset:  # `pvm-mbrl study seed=0,1`: an override, and the default preset
        args.overrides, args.preset = [args.preset, *args.overrides], "quick"
    if args.preset == "status":
        if len(args.overrides) != 1:
            raise ValueError("usage: pvm-mbrl study status STUDY_DIR")
        print(status_report(args.overrides[0]))
        return 0
    if args.preset == "export":
        if len(args.overrides) != 2:
            raise ValueError("usage: pvm-mbrl study export STUDY_DIR DESTINATION")
        from pvm_mbrl.study.export import export_study

        exported = export_study(*args.overrides)
        print(f"[study] exported {len(exported)} finished run(s) to {args.overrides[1]} (records only, no "
              f"checkpoints or replay): {', '.join(exported) or 'none'}")
        return 0
    options = StudyOptions(Path(args.dir) if args.dir else None, args.dry_run, args.progress_every,
                           not args.no_report, args.longest_first)
    return run_study(args.preset, args.overrides, options)


def _envs(args: argparse.Namespace) -> int:
    if args.envs_command == "preview":
        from pvm_mbrl.envs.preview import preview

        print(f"[envs] wrote {preview(args.family, args.out, args.size, args.seed, args.task)}")
    else:
        from pvm_mbrl.envs.random_returns import measure_random_returns
        from pvm_mbrl.envs.suites import load_suites

        results = measure_random_returns(args.family, args.episodes, args.seed, write=not args.dry_run,
                                         task=args.task)
        task = f" ({args.task})" if args.task else ""
        for name, (mean, std) in results.items():
            print(f"[envs] {args.family}:{name}{task} random-policy return {mean:.2f} +- {std:.2f} "
                  f"({args.episodes} episodes)")
        if not args.dry_run:
            print(f"[envs] stored in {load_suites(args.family).path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
