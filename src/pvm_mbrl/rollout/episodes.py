"""Evaluation episodes: run a policy for a fixed set of episode seeds and record the returns."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from pvm_mbrl.dreamer.agent import Agent
from pvm_mbrl.dreamer.rssm import RSSMState
from pvm_mbrl.envs.spaces import to_env_action

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never share seeds with training episodes

StepObserver = Callable[[int, int, dict, dict, RSSMState], None]
"""``observer(episode, step, obs, info, latent)``: called after the agent has read ``obs`` (and the env's ``info``
for it), with the posterior latent it formed; lets evaluation sample latents and frames without a second pass."""


def run_episodes(agent: Agent, env: gym.Env, seeds: list[int], greedy: bool = False,
                 observer: StepObserver | None = None, on_episode: Callable[[dict], None] | None = None) -> list[dict]:
    """One episode per seed; returns ``[{"seed", "return", "length"}]``; ``on_episode`` gets each as it ends.

    The policy's action sampling draws from torch's generators seeded with the episode's seed, inside
    ``torch.random.fork_rng``: an episode's actions depend on the checkpoint and the seed only (not on what ran
    before in the process, so re-evaluating a checkpoint gives the same returns at the same thread count), and
    evaluating leaves the caller's random stream (training's) untouched.
    """
    results = []
    agent.eval()
    devices = [agent.device] if agent.device.type == "cuda" else []
    for episode, seed in enumerate(seeds):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(seed))
            results.append(_episode(agent, env, episode, int(seed), greedy, observer))
        if on_episode is not None:
            on_episode(results[-1])
    return results


def _episode(agent: Agent, env: gym.Env, episode: int, seed: int, greedy: bool,
             observer: StepObserver | None) -> dict:
    obs, info = env.reset(seed=seed)
    state = agent.initial_state(1)
    is_first, total, length, done = True, 0.0, 0, False
    while not done:
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        batch["is_first"] = np.array([is_first])
        action, state = agent.act(batch, state, greedy=greedy)
        if observer is not None:
            observer(episode, length, obs, info, state[0])
        obs, reward, terminated, truncated, info = env.step(to_env_action(action[0], agent.discrete))
        total, length, is_first = total + float(reward), length + 1, False
        done = terminated or truncated
    return {"seed": seed, "return": total, "length": length}
