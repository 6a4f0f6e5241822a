"""ManiSkill3's PickSingleYCB through the Panda's wrist camera (``tabletop:pick_single_ycb``).

The paper's table-top env: a YCB object (or a stand-in, see ``tabletop_objects``) lies on the table; the arm
must pick it and bring it to a goal, a green sphere that, unlike ManiSkill's default, the camera can see.
ManiSkill's normalised dense reward (at most 1 a step), 50 control steps an episode, ManiSkill's default
controller for the task (``pd_joint_delta_pos``: 7 joint-angle deltas + gripper, in [-1, 1]).

Shift suites (``suites/tabletop.yaml``) choose which part of the seed's 80/20 object split is sampled, where
object and goal are placed (the central square |x|, |y| <= 0.08944 m or the rest of ManiSkill's 0.2 m square),
and the table's texture. CPU simulation and rendering (lavapipe) without CUDA; ManiSkill's GPU backends with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import sapien
import torch

from pvm_mbrl.envs.suites import load_suites
from pvm_mbrl.envs.tabletop_objects import resolve_object_set, split_objects
from pvm_mbrl.envs.tabletop_scene import PickObjectEnv

TASKS = ("pick_single_ycb",)
SIZES = (64, 128, 224)
CONTROL_MODES = ("pd_joint_delta_pos", "pd_ee_delta_pos", "pd_ee_delta_pose")
EPISODE_STEPS = 50
OBJECT_SUBSETS = ("train", "heldout", "all")
MANIFEST_NAME = "tabletop_objects.json"

RENDER_HELP = (
    "SAPIEN needs a Vulkan device to render. On a CPU machine install Mesa's lavapipe from Debian "
    "bookworm-backports (Mesa >= 23; Debian 12's Mesa 22 lacks an extension SAPIEN needs): "
    "`apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1` (bash scripts/setup.sh does this). "
    "On a GPU machine install the NVIDIA driver's Vulkan ICD (/usr/share/vulkan/icd.d/nvidia_icd.json).")


def _backends(device: str) -> tuple[str, str]:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "physx_cpu", "sapien_cpu"
    if device.startswith("cuda"):
        return "physx_cuda", "sapien_cuda"
    raise ValueError(f"unknown device {device!r}; choose one of: auto, cpu, cuda")


class _Tabletop:
    """What the single and the batched env share: the suite's ManiSkill env, its spaces and observations."""

    def __init__(self, num_envs: int, task: str, size: int, suite: str, split_seed: int, control_mode: str,
                 action_repeat: int, episode_steps: int, masks: bool, vectors: bool, asset_dir: str | None,
                 device: str, run_dir: str | None):
        if task not in TASKS:
            raise ValueError(f"unknown tabletop task {task!r}; known tasks: {', '.join(TASKS)}")
        if size not in SIZES:
            raise ValueError(f"unsupported tabletop image size {size!r}; choose one of: {', '.join(map(str, SIZES))}")
        if control_mode not in CONTROL_MODES:
            raise ValueError(f"unknown control_mode {control_mode!r}; choose one of: {', '.join(CONTROL_MODES)}")
        if action_repeat < 1 or episode_steps < 1:
            raise ValueError(f"action_repeat and episode_steps must be >= 1, got {action_repeat}, {episode_steps}")
        params = load_suites("tabletop").get(suite).params
        self.suite, self.size, self.masks, self.vectors = suite, size, masks, vectors
        self.action_repeat, self.episode_steps = action_repeat, episode_steps
        self.object_set = resolve_object_set(asset_dir)
        self.train_ids, self.heldout_ids = split_objects(self.object_set.ids, split_seed)
        subset = params.get("objects", "train")
        if subset not in OBJECT_SUBSETS:
            raise ValueError(f"suite {suite!r}: unknown objects {subset!r}; choose one of: {', '.join(OBJECT_SUBSETS)}")
        self.model_ids = {"train": self.train_ids, "heldout": self.heldout_ids, "all": self.object_set.ids}[subset]
        texture = params.get("table_texture")
        texture_path = self.object_set.textures_dir / texture if texture else None
        if texture_path is not None and not texture_path.exists():
            raise FileNotFoundError(f"table texture {texture_path} is missing; run `bash scripts/setup.sh`")
        sim_backend, render_backend = _backends(device)
        try:
            self.env = PickObjectEnv(
                object_set=self.object_set, model_ids=self.model_ids, region=params.get("region", "square"),
                table_texture=texture_path, num_envs=num_envs, obs_mode="rgb+segmentation" if masks else "rgb",
                reward_mode="normalized_dense", control_mode=control_mode, sim_backend=sim_backend,
                render_backend=render_backend, sensor_configs={"hand_camera": {"width": size, "height": size}})
        except RuntimeError as error:
            if "render" in str(error).lower() or "vulkan" in str(error).lower():
                raise RuntimeError(f"ManiSkill cannot render here ({error}). {RENDER_HELP}") from error
            raise
        space = self.env.single_action_space
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, space.shape, np.float32)
        spaces = {"image": gym.spaces.Box(0, 255, (size, size, 3), np.uint8)}
        if vectors:
            spaces["state"] = gym.spaces.Box(-np.inf, np.inf, (29,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self.checked = False
        if run_dir:
            self.write_manifest(Path(run_dir))

    def write_manifest(self, run_dir: Path) -> Path:
        """Record the object set and this seed's split in the run directory (once; the same for every env)."""
        path = run_dir / MANIFEST_NAME
        if not path.exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            record = {**self.object_set.manifest(), "split": {"train": self.train_ids, "heldout": self.heldout_ids}}
            path.write_text(json.dumps(record, indent=1))
        return path

    def env_action(self, actions: np.ndarray) -> torch.Tensor:
        """Agent actions in [-1, 1] (batch first) as the controller's range."""
        actions = np.clip(np.asarray(actions, np.float32), -1.0, 1.0)
        return torch.as_tensor(self.low + (actions + 1.0) * 0.5 * (self.high - self.low), device=self.env.device)

    def observations(self, obs: dict, info: dict) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Batched numpy observations and infos; the first call checks that frames are not blank."""
        camera = obs["sensor_data"]["hand_camera"]
        out = {"image": camera["rgb"].cpu().numpy()}
        if not self.checked:
            if out["image"][0].std() == 0:
                raise RuntimeError(f"ManiSkill rendered a blank (constant) wrist-camera image. {RENDER_HELP}")
            self.checked = True
        if self.vectors:
            agent, extra = obs["agent"], obs["extra"]
            parts = [agent["qpos"], agent["qvel"], extra["tcp_pose"], extra["goal_pos"], extra["is_grasped"][:, None]]
            out["state"] = torch.cat([p.float().reshape(len(p), -1) for p in parts], 1).cpu().numpy()
        extras = {"success": info["success"].cpu().numpy(), "is_grasped": info["is_grasped"].cpu().numpy()}
        if self.masks:
            ids = camera["segmentation"][..., 0]
            per_scene = self.env.obj.per_scene_id.to(ids.device)[:, None, None]
            extras["object_mask"] = (ids == per_scene).cpu().numpy()
        return out, extras


class TabletopEnv(gym.Env):
    """The table-top task as a single Gymnasium env: ``image`` (uint8 HxWx3) from the wrist camera.

    ``suite`` names an entry of ``suites/tabletop.yaml``; ``split_seed`` (the run's seed) fixes the 80/20
    object split; ``reset(seed=s)`` fixes the object, its pose, the goal and the arm's start. With ``masks``
    the info carries ``object_mask`` (HxW bool): the target object's pixels from the segmentation camera.
    With ``vectors`` the observation adds ``state``: arm joints and velocities, gripper pose, goal position
    and whether the object is grasped. Episodes end by time limit (``truncated``) after ``episode_steps``
    control steps, or on success with ``terminate_on_success``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, task: str = "pick_single_ycb", size: int = 64, suite: str = "id", split_seed: int = 0,
                 control_mode: str = "pd_joint_delta_pos", action_repeat: int = 1,
                 episode_steps: int = EPISODE_STEPS, masks: bool = False, vectors: bool = False,
                 terminate_on_success: bool = False, asset_dir: str | None = None, device: str = "auto",
                 run_dir: str | None = None, seed: int | None = None):
        self._core = _Tabletop(1, task, size, suite, split_seed, control_mode, action_repeat, episode_steps, masks,
                               vectors, asset_dir, device, run_dir)
        self._env = self._core.env
        self.action_space, self.observation_space = self._core.action_space, self._core.observation_space
        self.train_ids, self.heldout_ids = self._core.train_ids, self._core.heldout_ids
        self.terminate_on_success = terminate_on_success
        self.render_mode = "rgb_array"
        self._seed, self._steps, self._image = seed, 0, None

    @property
    def current_object(self) -> str:
        """The id of the object in the scene (set at each reset)."""
        return str(self._env.model_ids[0])

    def object_pose(self) -> np.ndarray:
        """World (x, y, z) of the object's origin."""
        return self._env.obj.pose.p[0].cpu().numpy()

    def goal_position(self) -> np.ndarray:
        return self._env.goal_site.pose.p[0].cpu().numpy()

    def write_manifest(self, run_dir: Path) -> Path:
        return self._core.write_manifest(run_dir)

    def _unbatch(self, obs: dict, info: dict) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        observation, extras = self._core.observations(obs, info)
        observation = {k: v[0] for k, v in observation.items()}
        self._image = observation["image"]
        return observation, {k: v[0].item() if v[0].ndim == 0 else v[0] for k, v in extras.items()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None and self._seed is not None:
            seed = self._seed  # the constructor's seed fixes the first episode, as dmc envs do
        self._seed = None
        obs, info = self._env.reset(seed=seed)
        self._steps = 0
        return self._unbatch(obs, info)

    def step(self, action: np.ndarray):
        action = self._core.env_action(np.asarray(action)[None])
        reward, terminated = 0.0, False
        for _ in range(self._core.action_repeat):
            obs, r, success, _, info = self._env.step(action)
            reward += float(r[0])
            self._steps += 1
            terminated = self.terminate_on_success and bool(success[0])
            if terminated or self._steps >= self._core.episode_steps:
                break
        observation, extras = self._unbatch(obs, info)
        truncated = not terminated and self._steps >= self._core.episode_steps
        return observation, reward, terminated, truncated, extras

    def render(self) -> np.ndarray:
        if self._image is None:
            raise RuntimeError("call reset() before render()")
        return self._image

    def close(self) -> None:
        if getattr(self, "_env", None) is not None:
            self._env.close()
            self._env = None


class TabletopVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` table-top envs in one ManiSkill simulation: on CUDA, GPU physics and rendering.

    Settings as ``TabletopEnv``'s, without ``terminate_on_success``. Every episode has the same length, so
    all envs end together; the step after that resets them all and returns the first observations
    (Gymnasium's next-step auto-reset, as the training loop expects). As in ManiSkill's GPU setting, each
    env keeps the object it was given when the simulation was built. ManiSkill's CPU backend runs one env
    per simulation: there ``num_envs`` must be 1.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, task: str = "pick_single_ycb", size: int = 64, suite: str = "id",
                 split_seed: int = 0, control_mode: str = "pd_joint_delta_pos", action_repeat: int = 1,
                 episode_steps: int = EPISODE_STEPS, masks: bool = False, vectors: bool = False,
                 asset_dir: str | None = None, device: str = "auto", run_dir: str | None = None,
                 seed: int | None = None):
        if num_envs > 1 and _backends(device)[0] == "physx_cpu":
            raise ValueError(f"num_envs={num_envs} needs ManiSkill's GPU simulation (CUDA); on CPU use num_envs=1 "
                             "or several TabletopEnv processes")
        self._core = _Tabletop(num_envs, task, size, suite, split_seed, control_mode, action_repeat, episode_steps,
                               masks, vectors, asset_dir, device, run_dir)
        self._env = self._core.env
        self.num_envs = num_envs
        self.single_action_space = self._core.action_space
        self.single_observation_space = self._core.observation_space
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self._seed, self._steps, self._needs_reset = seed, 0, False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and self._seed is not None:
            seed = self._seed
        self._seed = None
        seeds = None if seed is None else [seed + i for i in range(self.num_envs)]
        obs, info = self._env.reset(seed=seeds)
        self._steps, self._needs_reset = 0, False
        return self._core.observations(obs, info)

    def step(self, actions: np.ndarray):
        if self._needs_reset:
            observation, extras = self.reset()
            zeros = np.zeros(self.num_envs, bool)
            return observation, np.zeros(self.num_envs, np.float32), zeros, zeros.copy(), extras
        action = self._core.env_action(actions)
        reward = torch.zeros(self.num_envs, device=self._env.device)
        for _ in range(self._core.action_repeat):
            obs, r, _, _, info = self._env.step(action)
            reward += r.float()
            self._steps += 1
            if self._steps >= self._core.episode_steps:
                break
        observation, extras = self._core.observations(obs, info)
        self._needs_reset = self._steps >= self._core.episode_steps
        truncated = np.full(self.num_envs, self._needs_reset)
        return observation, reward.cpu().numpy(), np.zeros(self.num_envs, bool), truncated, extras

    def close_extras(self, **kwargs: Any) -> None:
        if getattr(self, "_env", None) is not None:  # None if the constructor failed
            self._env.close()
            self._env = None


def check_rendering(size: int = 32) -> str:
    """Render a lit box with SAPIEN; raise naming what is missing if there is no Vulkan device or the image
    is blank (set-up runs this so a broken machine fails there, not in the middle of training)."""
    try:
        scene = sapien.Scene()
        scene.set_ambient_light([0.4, 0.4, 0.4])
        scene.add_directional_light([0, 1, -1], [1, 1, 1])
        builder = scene.create_actor_builder()
        builder.add_box_visual(half_size=[0.1, 0.1, 0.1], material=[1, 0, 0])
        builder.build_kinematic()
        camera = scene.add_camera("check", size, size, 1.0, 0.01, 10.0)
        camera.entity.set_pose(sapien.Pose([-1, 0, 0]))
        scene.update_render()
        camera.take_picture()
        image = camera.get_picture("Color")[..., :3]
    except RuntimeError as error:
        raise RuntimeError(f"SAPIEN cannot render here ({error}). {RENDER_HELP}") from error
    if image.std() == 0:
        raise RuntimeError(f"SAPIEN rendered a blank image. {RENDER_HELP}")
    return f"SAPIEN rendered a {size}x{size} image ({sapien.render.get_device_summary().splitlines()[0].strip()})"
