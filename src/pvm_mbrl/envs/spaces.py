"""What the agent needs to know about an env's spaces, and converting its actions for the env."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def observation_info(space: gym.spaces.Dict) -> dict:
    """Image size and the 1-D vector keys of a dict observation space with an ``image`` key."""
    if not isinstance(space, gym.spaces.Dict) or "image" not in space.spaces:
        raise ValueError(f"envs must observe a Dict with an 'image' key, got {space}")
    height, width, channels = space["image"].shape
    if height != width or channels != 3:
        raise ValueError(f"images must be square RGB, got shape {space['image'].shape}")
    vectors = {k: int(np.prod(s.shape)) for k, s in space.spaces.items() if k != "image"}
    return {"image_size": height, "vectors": vectors}


def action_info(space: gym.Space) -> tuple[int, bool]:
    """(action dimension, discrete?) for a Box or Discrete action space."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n), True
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return int(space.shape[0]), False
    raise ValueError(f"unsupported action space {space}; use a 1-D Box or Discrete")


def to_env_action(action: np.ndarray, discrete: bool) -> np.ndarray:
    """The agent's one-hot (discrete) or [-1, 1] (continuous) actions as the env takes them."""
    return action.argmax(-1) if discrete else action.astype(np.float32)


def random_actions(space: gym.Space, count: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random actions in the agent's format (one-hot or [-1, 1])."""
    dim, discrete = action_info(space)
    if discrete:
        return np.eye(dim, dtype=np.float32)[rng.integers(0, dim, count)]
    return rng.uniform(-1.0, 1.0, (count, dim)).astype(np.float32)
