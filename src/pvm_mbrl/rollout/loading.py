"""Loading a run's agent at its last checkpoint, for evaluation without training (see ``evaluation.suites``)."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from pvm_mbrl.checkpoint import load_checkpoint
from pvm_mbrl.dreamer.agent import Agent, resolve_device, use_threads
from pvm_mbrl.envs.registry import make_env
from pvm_mbrl.envs.spaces import action_info, observation_info
from pvm_mbrl.rundir import RunDir


def agent_for_env(cfg: DictConfig, device: torch.device) -> Agent:
    """A fresh agent for ``cfg``'s env, its observation and action spaces read from one probe env."""
    env = make_env(cfg.env, cfg.seed)
    agent = Agent(cfg, observation_info(env.observation_space), *action_info(env.action_space), device)
    env.close()
    return agent


def load_agent(run_dir: Path, device: str = "auto") -> tuple[Agent, dict]:
    """The agent of a run directory at its last checkpoint, and the checkpoint's counters."""
    files = RunDir(run_dir)
    config_path, checkpoint_path = files.config, files.checkpoint
    for path in (config_path, checkpoint_path):
        if not path.exists():
            raise FileNotFoundError(f"{run_dir} is not a finished or checkpointed run: {path.name} is missing")
    cfg = OmegaConf.load(config_path)
    use_threads(cfg.get("threads", 0))  # as its training did: a study runs evaluations side by side, one thread each
    torch_device = resolve_device(device)
    agent = agent_for_env(cfg, torch_device)
    state = load_checkpoint(checkpoint_path, torch_device)
    agent.load_checkpoint_state(state["agent"])
    return agent, state["counters"]
