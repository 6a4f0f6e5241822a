"""Env speed and memory: agent steps/s, simulator frames/s and peak RSS per env at 64^2, 128^2 and 224^2.

    python benchmarks/envs.py                                  # dmc, driving and tabletop
    python benchmarks/envs.py --envs driving:highway --sizes 64 --steps 500

Each (env, size) runs in a fresh process, so its peak resident memory is that env's alone (Python, the
simulator, its renderer). Random actions; episodes that end are reset inside the timed loop, as in training.
Frames/s counts simulator steps (agent steps x the preset's action repeat, the training loop's env steps);
build s is importing the simulator, building the env and its first reset.
Compare envs by the ratios printed in one run, not across machines.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

DEFAULT_ENVS = ("dmc:cartpole-balance", "driving:highway", "tabletop:pick_single_ycb")


def measure(name: str, size: int, steps: int, seed: int = 0) -> dict[str, float]:
    """Build one env from its family's preset, time ``steps`` random agent steps, report peak RSS (MiB)."""
    from pvm_mbrl.envs.presets import family_env_config
    from pvm_mbrl.envs.registry import make_env, parse_env_name
    from pvm_mbrl.envs.spaces import action_info, random_actions, to_env_action

    family, _ = parse_env_name(name)
    cfg = family_env_config(family, name=name, size=size)
    start = time.perf_counter()
    env = make_env(cfg, seed)
    env.reset(seed=seed)
    build_s = time.perf_counter() - start
    discrete = action_info(env.action_space)[1]
    rng = np.random.default_rng(seed)
    actions = [to_env_action(a, discrete) for a in random_actions(env.action_space, steps + 5, rng)]
    for action in actions[:5]:  # warm-up
        env.step(action)
    resets, start = 0, time.perf_counter()
    for action in actions[5:]:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
            resets += 1
    elapsed = time.perf_counter() - start
    env.close()
    return {"steps_per_s": steps / elapsed, "frames_per_s": steps * cfg.action_repeat / elapsed,
            "build_s": build_s, "resets": resets,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(DEFAULT_ENVS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 224])
    parser.add_argument("--steps", type=int, default=300, help="timed agent steps per measurement")
    args = parser.parse_args()

    spawn = multiprocessing.get_context("spawn")  # a fresh process per measurement: clean peak RSS and GL
    results = {}
    print(f"{'env':<24} {'size':>5} {'steps/s':>9} {'frames/s':>9} {'build s':>8} {'resets':>7} "
          f"{'peak RSS MiB':>13} {'steps/s vs first env':>21}")
    for size in args.sizes:
        for name in args.envs:
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                result = results[name, size] = pool.submit(measure, name, size, args.steps).result()
            ratio = result["steps_per_s"] / results[args.envs[0], size]["steps_per_s"]
            print(f"{name:<24} {size:>5} {result['steps_per_s']:>9.1f} {result['frames_per_s']:>9.1f} "
                  f"{result['build_s']:>8.2f} {result['resets']:>7} {result['peak_rss_mib']:>13.0f} "
                  f"{ratio:>20.2f}x", flush=True)


if __name__ == "__main__":
    main()
