"""DeepMind Control Suite tasks from pixels as Gymnasium envs (``dmc:<domain>-<task>``), with the visual shift
suites of ``envs/suites/dmc.yaml`` (``id``, ``easy_ood``, ``hard_ood``; see ``envs/dmc_appearance.py``)."""

from __future__ import annotations

import math
import zlib
from typing import Any

import gymnasium as gym
import numpy as np

from pvm_mbrl.envs.rendering import configure_mujoco_gl
from pvm_mbrl.envs.suites import load_suites

configure_mujoco_gl()

from dm_control import suite as dm_suite  # noqa: E402  (needs MUJOCO_GL set first)

from pvm_mbrl.envs.dmc_appearance import Appearance  # noqa: E402  (imports MuJoCo)

SHADOW_TEXELS_PER_PIXEL = 16


def shadow_map_size(image_size: int, model_default: int) -> int:
    """Side of the shadow map to render ``image_size``^2 frames with: the smallest power of two with at least
    ``SHADOW_TEXELS_PER_PIXEL`` texels per image pixel, never above the model's own (dm_control's 2048).

    Why: without a GPU, Mesa's software rasteriser spends most of a 64^2 frame drawing the 2048^2 shadow map;
    at 1024^2 a frame takes ~35% less time and 64^2 images match the 2048^2 ones (identical on cartpole,
    0.01 grey levels apart on average on walker, measured).
    """
    wanted = 1 << max(0, math.ceil(math.log2(SHADOW_TEXELS_PER_PIXEL * image_size)))
    return min(wanted, model_default)


def dmc_task_names() -> list[str]:
    return sorted(f"{domain}-{task}" for domain, task in dm_suite.ALL_TASKS)


class DMCEnv(gym.Env):
    """A dm_control task rendered at ``size`` x ``size``; DreamerV3's action repeat of 2 by default.

    Observations: ``image`` (uint8 HxWx3) and, with ``vectors=True``, ``state`` (the task's proprioceptive
    and task vector, float32). Rewards are summed over repeated actions. dm_control ends episodes by time
    limit (truncated); a zero discount at the end marks a true termination.

    ``suite`` picks a visual shift suite of ``envs/suites/dmc.yaml``; a shifted suite draws new colours (or a
    floor texture) at every reset from its own generator, which ``reset(seed=s)`` (or the constructor's seed)
    seeds with ``(s, suite)``: the same seed gives the same colours in a suite and unrelated ones across suites.
    The task's random state is separate, so the same seed gives the same physical episode in every suite.
    ``appearance`` holds the current episode's draw.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, task: str = "cartpole-balance", size: int = 64, action_repeat: int = 2, camera: int = -1,
                 vectors: bool = False, seed: int | None = None, suite: str = "id"):
        if task not in dmc_task_names():
            raise ValueError(f"unknown dmc task {task!r}; known tasks: {', '.join(dmc_task_names())}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        domain, name = task.split("-", 1)
        self.task, self.size, self.action_repeat, self.vectors = task, size, action_repeat, vectors
        self.camera = (2 if domain == "quadruped" else 0) if camera < 0 else camera
        self.suite = suite
        self._appearance = Appearance(load_suites("dmc").get(suite).params)
        self.appearance: dict[str, dict[str, Any]] = {}
        self._appearance_rng = self._appearance_generator(seed)
        self._env = dm_suite.load(domain, name, task_kwargs={"random": seed})
        quality = self._env.physics.model.vis.quality  # read when the first frame creates the GL context
        quality.shadowsize = shadow_map_size(size, int(quality.shadowsize))
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        self._low, self._high = spec.minimum, spec.maximum
        spaces = {"image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8)}
        if vectors:
            dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
            spaces["state"] = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self.render_mode = "rgb_array"

    def _observation(self, time_step) -> dict[str, np.ndarray]:
        obs = {"image": self.render()}
        if self.vectors:
            parts = [np.asarray(v, np.float32).reshape(-1) for v in time_step.observation.values()]
            obs["state"] = np.concatenate(parts)
        return obs

    def _appearance_generator(self, seed: int | None) -> np.random.Generator:
        if seed is None:
            return np.random.default_rng()
        return np.random.default_rng([seed, zlib.crc32(self.suite.encode())])

    def render(self) -> np.ndarray:
        return self._env.physics.render(self.size, self.size, camera_id=self.camera).copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.task.random.seed(seed)
            self._appearance_rng = self._appearance_generator(seed)
        time_step = self._env.reset()
        if self._appearance:
            self.appearance = self._appearance.apply(self._env.physics, self._appearance_rng)
        return self._observation(time_step), {}

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        action = self._low + (action + 1.0) * 0.5 * (self._high - self._low)  # [-1, 1] -> the task's bounds
        reward = 0.0
        for _ in range(self.action_repeat):
            time_step = self._env.step(action)
            reward += time_step.reward or 0.0
            if time_step.last():
                break
        terminated = time_step.last() and time_step.discount == 0.0
        truncated = time_step.last() and not terminated
        return self._observation(time_step), reward, terminated, truncated, {}
