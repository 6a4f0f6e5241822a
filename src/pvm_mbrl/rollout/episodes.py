"""Evaluation episodes: run a policy for a fixed set of episode seeds and record the returns."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import numpy as np

from pvm_mbrl.dreamer.agent import Agent
from pvm_mbrl.dreamer.rssm import RSSMState
from pvm_mbrl.envs.spaces import to_env_action

EVAL_SEED_OFFSET = 1_000_000  # evaluation episodes never share seeds with training episodes

StepObserver = Callable[[int, int, dict, dict, RSSMState], None]
"""``observer(episode, step, obs, info, latent)``: called after the agent has read ``obs`` (and the env's ``info``
for it), with the posterior latent it formed; lets evaluation sample latents and frames without a second pass."""


def run_episodes(agent: Agent, env: gym.Env, seeds: list[int], greedy: bool = False,
                 observer: StepObserver | None = None) -> list[dict]:
    """One episode per seed; returns ``[{"seed", "return", "length"}]``."""
    results = []
    agent.eval()
    for episode, seed in enumerate(seeds):
        obs, info = env.reset(seed=int(seed))
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
        results.append({"seed": int(seed), "return": total, "length": length})
    return results
