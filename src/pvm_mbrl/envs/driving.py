"""Highway driving from a front camera (``driving:highway``): the stand-in for RL-ViGen's CARLA highway.

No CARLA server can run here, so the task is rebuilt from parts that do: ``highway-env`` simulates the
four-lane highway, the ego car's kinematics and 40 IDM/MOBIL vehicles (``driving_traffic``); MuJoCo draws what
a camera on the ego car's bonnet sees (``driving_scene``), with RL-ViGen's weathers (written in CARLA's weather
parameters, see ``suites/driving.yaml``) turned into sun, sky, fog and headlights, and rain and sensor noise
added to the rendered image (``driving_weather``). The image is all the agent observes. docs/driving.md states
the reward and every difference from the CARLA original.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from highway_env.vehicle.behavior import IDMVehicle

from pvm_mbrl.envs.driving_scene import SIZES, HighwayScene
from pvm_mbrl.envs.driving_traffic import (
    BRAKE_DEC,
    EGO_MASS,
    RAIL_Y,
    THROTTLE_ACC,
    EgoCar,
    StraightRoad,
    highway_network,
    spawn_traffic,
    steering_limit,
)
from pvm_mbrl.envs.driving_weather import Weather, corruptions, weather_look
from pvm_mbrl.envs.suites import load_suites

TASKS = ("highway",)

# Simulation: CARLA's synchronous mode in RL-ViGen ticks at 20 Hz; frame_skip 2 (our action_repeat) => 10 Hz.
FRAME_SECONDS = 0.05

# RL-ViGen's CARLA reward per simulator frame: v_s * dt - 1e-4 * collision impulse - |steer|.
COLLISION_COST, STEER_COST = 1e-4, 1.0
STUCK_SPEED, STUCK_CHECK = 0.02, 100  # RL-ViGen ends episodes stuck below 0.02 m/s, checked every 100 frames


class DrivingEnv(gym.Env):
    """Drive along a four-lane highway among 40 vehicles, seeing only the front camera.

    Action (Box[-1, 1]^2, CARLA's order): steer (right positive, scaled to the grip-limited wheel angle) and
    throttle (> 0, up to 3.5 m/s^2) or brake (< 0, up to 8 m/s^2). Each frame (1/20 s) earns
    ``progress along the road (m) - 1e-4 * collision impulse (N s) - |steer|``; rewards are summed over the
    ``action_repeat`` frames of an env step. A collision (another car or the guard rail) ends the episode;
    the time limit (``max_frames``) or standing still (RL-ViGen's stuck rule) truncates it.

    The episode seed fixes the ego's lane, the traffic and its colours; the suite fixes the weather, which the
    seed varies slightly (by the suite's ``jitter``) from a separate random stream, so one seed gives the
    same traffic under every weather. ``weather`` replaces the suite's weather by explicit CARLA parameters.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: str = "highway", size: int = 64, action_repeat: int = 2, suite: str = "id",
                 vehicles: int = 40, max_frames: int = 1000, weather: Mapping[str, float] | None = None,
                 seed: int | None = None):
        if task not in TASKS:
            raise ValueError(f"unknown driving task {task!r}; known tasks: {', '.join(TASKS)}")
        if size not in SIZES:
            raise ValueError(f"unsupported driving image size {size!r}; choose one of: {', '.join(map(str, SIZES))}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        if vehicles < 0 or max_frames < 1:
            raise ValueError(f"vehicles must be >= 0 and max_frames >= 1, got {vehicles} and {max_frames}")
        self.suite = load_suites("driving").get(suite)
        if weather is None:
            self.weather = Weather.from_mapping(self.suite.params["weather"])
            self._jitter = dict(self.suite.params.get("jitter", {}))
        else:
            self.weather, self._jitter = Weather.from_mapping(weather), {}
        self.task, self.size, self.action_repeat = task, size, action_repeat
        self.vehicles, self.max_frames = vehicles, max_frames
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.observation_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8)})
        self.render_mode = "rgb_array"

        look = weather_look(self.weather)
        self.scene = HighwayScene(look, vehicles, size)
        self._network = highway_network()
        self.road: StraightRoad | None = None
        self.ego: EgoCar | None = None
        self.traffic: list[IDMVehicle] = []
        self.episode_weather = self.weather
        self._corrupt = corruptions(look, size)
        self._frames, self._image = 0, None
        self._first_seed = seed  # used by the first reset() that names no seed

    # ----------------------------------------------------------------------------------------------- episode
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed, self._first_seed = (self._first_seed if seed is None else seed), None
        super().reset(seed=seed)
        scene_seed, weather_seed, image_seed = np.random.SeedSequence(
            int(self.np_random.integers(2**63))).generate_state(3)
        rng = np.random.default_rng(scene_seed)
        self.road, self.ego, self.traffic = spawn_traffic(self._network, self.vehicles, rng)
        self.scene.paint(rng)
        self.episode_weather = self.weather.jittered(self._jitter, np.random.default_rng(weather_seed))
        look = weather_look(self.episode_weather)
        self.scene.apply_look(look)
        self._corrupt = corruptions(look, self.size)
        self._corrupt.set_random_seed(int(image_seed))
        self._frames = 0
        return self._observation(), self._info(0.0, 0.0, 0.0, "")

    def step(self, action: np.ndarray):
        if self.ego is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, np.float64).reshape(-1)
        if action.shape != (2,):
            raise ValueError(f"driving actions are (steer, throttle/brake), got shape {action.shape}")
        steer, pedal = np.clip(action, -1.0, 1.0)
        reward = distance = impulse = steer_penalty = 0.0
        terminated = truncated = False
        reason = ""
        for _ in range(self.action_repeat):
            x_before = self.ego.position[0]
            self.ego.act({"steering": steer * steering_limit(self.ego.speed),
                          "acceleration": pedal * (THROTTLE_ACC if pedal >= 0 else BRAKE_DEC)})
            self.road.act()
            self.road.step(FRAME_SECONDS)
            self._frames += 1
            progress = self.ego.position[0] - x_before
            hit, reason = self._collision()
            reward += progress - COLLISION_COST * hit - STEER_COST * abs(steer)
            distance, impulse = distance + progress, impulse + hit
            steer_penalty += STEER_COST * abs(steer)
            if reason:
                terminated = True
                break
            if self._frames >= self.max_frames:
                truncated, reason = True, "time_limit"
                break
            if self._frames >= STUCK_CHECK and self._frames % STUCK_CHECK == 0 and self.ego.speed < STUCK_SPEED:
                truncated, reason = True, "stuck"
                break
        info = self._info(distance, impulse, steer_penalty, reason)
        return self._observation(), float(reward), terminated, truncated, info

    def _collision(self) -> tuple[float, str]:
        """(impulse in N s, reason) of a collision this frame: the ego's mass times the closing speed."""
        corners = self.ego.polygon()[:, 1]
        if corners.min() < RAIL_Y[0] or corners.max() > RAIL_Y[1]:
            self.ego.crashed = True
            return EGO_MASS * self.ego.speed, "guard_rail"
        if not self.ego.crashed:
            return 0.0, ""
        others = [v for v in self.traffic if v.crashed]
        other = min(others, key=lambda v: np.linalg.norm(v.position - self.ego.position))
        return EGO_MASS * float(np.linalg.norm(self.ego.velocity - other.velocity)), "collision"

    def _info(self, distance: float, impulse: float, steer_penalty: float, reason: str) -> dict[str, Any]:
        """The reward's terms for this env step (reward = distance - 1e-4 * impulse - steer_penalty)."""
        return {"distance": float(distance), "collision_impulse": float(impulse), "steer_penalty": float(steer_penalty),
                "speed": float(self.ego.speed), "frames": self._frames, "end_reason": reason}

    # --------------------------------------------------------------------------------------------- rendering
    def _observation(self) -> dict[str, np.ndarray]:
        self.scene.sync(self.ego, self.traffic)
        self._image = self._corrupt(image=self.scene.render())["image"]
        return {"image": self._image}

    def render(self) -> np.ndarray:
        """The last observed camera image."""
        if self._image is None:
            raise RuntimeError("call reset() before render()")
        return self._image.copy()

    def vehicle_mask(self) -> np.ndarray:
        """Per pixel of the current camera image: the index into ``traffic`` of the vehicle seen, or -1.

        Exact ground truth from the renderer (no corruptions), e.g. to check that traffic is in view.
        """
        self.scene.sync(self.ego, self.traffic)
        return self.scene.vehicle_mask()

    def close(self) -> None:
        if self.scene is not None:
            self.scene.close()
            self.scene = None
