"""``pvm-mbrl evaluate RUN_DIR``: run a run's checkpoint for a set of episodes without training."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from pvm_mbrl.dreamer.agent import Agent
from pvm_mbrl.envs.registry import make_env
from pvm_mbrl.envs.spaces import action_info, observation_info
from pvm_mbrl.evaluation.episodes import run_episodes
from pvm_mbrl.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from pvm_mbrl.training.loop import EVAL_SEED_OFFSET, resolve_device


def load_agent(run_dir: Path, device: str = "auto") -> tuple[Agent, dict]:
    """The agent of a run directory at its last checkpoint, and the checkpoint's counters."""
    config_path, checkpoint_path = run_dir / "config.yaml", run_dir / CHECKPOINT_NAME
    for path in (config_path, checkpoint_path):
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} is not a finished or checkpointed run: {path.name} is missing")
    cfg = OmegaConf.load(config_path)
    torch_device = resolve_device(device)
    env = make_env(cfg.env, cfg.seed)
    agent = Agent(cfg, observation_info(env.observation_space), *action_info(env.action_space), torch_device)
    env.close()
    state = load_checkpoint(checkpoint_path, torch_device)
    agent.load_checkpoint_state(state["agent"])
    return agent, state["counters"]


def evaluate_run(run_dir: str | Path, episodes: int = 10, seed: int = 0, greedy: bool = False,
                 device: str = "auto") -> dict:
    """Evaluate a checkpoint; writes ``evaluations/step<N>.json`` in the run directory and returns it."""
    run_dir = Path(run_dir)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    agent, counters = load_agent(run_dir, device)
    env = make_env(agent.cfg.env, seed + EVAL_SEED_OFFSET)
    seeds = [2 * EVAL_SEED_OFFSET + seed * 100_000 + k for k in range(episodes)]
    start = time.time()
    results = run_episodes(agent, env, seeds, greedy=greedy)
    env.close()
    returns = [r["return"] for r in results]
    summary = {"run_dir": str(run_dir), "env_steps": counters["env_steps"], "env": agent.cfg.env.name,
               "greedy": greedy, "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
               "episodes": results, "seconds": time.time() - start}
    out = run_dir / "evaluations" / f"step{counters['env_steps']}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=1))
    return summary
