"""The table-top task's ManiSkill scene: ManiSkill's table, the suite's table texture, one object of the suite's
set per env (built from ``tabletop_objects``), a goal sphere the camera can see, and where object and goal are
placed (``sample_xy`` over the suite's region). The Gymnasium envs around it are in ``tabletop``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sapien
import torch
from mani_skill.envs.sapien_env import BaseEnv
from mani_skill.envs.tasks.tabletop.pick_single_ycb import PickSingleYCBEnv
from mani_skill.utils.building import actors
from mani_skill.utils.scene_builder.table import TableSceneBuilder
from mani_skill.utils.structs.actor import Actor
from mani_skill.utils.structs.pose import Pose

from pvm_mbrl.envs.tabletop_objects import ObjectSet, build_object_actor

HALF_SQUARE = 0.1            # ManiSkill samples object and goal x, y in [-0.1, 0.1]
ID_HALF_SQUARE = 0.08944     # the paper's ID square: 80% of that area (sqrt(0.8) * 0.1)
REGIONS = ("square", "inner", "ring")


def sample_xy(rng: np.random.RandomState, region: str) -> np.ndarray:
    """An (x, y) uniform over ``region``: the 0.2 m square, its central ID square, or the ring between."""
    if region == "inner":
        return rng.uniform(-ID_HALF_SQUARE, ID_HALF_SQUARE, 2)
    if region not in ("square", "ring"):
        raise ValueError(f"unknown region {region!r}; choose one of: {', '.join(REGIONS)}")
    while True:  # the ring is 20% of the square: ~5 draws on average
        xy = rng.uniform(-HALF_SQUARE, HALF_SQUARE, 2)
        if region == "square" or np.abs(xy).max() > ID_HALF_SQUARE:
            return xy


def in_region(xy: np.ndarray, region: str) -> bool:
    """Whether (x, y) lies in ``region`` (what the shift tests check after every reset)."""
    reach = np.abs(np.asarray(xy)[:2]).max()
    if region == "inner":
        return bool(reach <= ID_HALF_SQUARE + 1e-6)
    return bool(reach <= HALF_SQUARE + 1e-6 and (region == "square" or reach > ID_HALF_SQUARE))


def _set_texture(actor: Actor, texture: Path) -> None:
    """Replace the base-colour texture of every textured part of an actor's visual (the table's wood)."""
    image = sapien.render.RenderTexture2D(str(texture))
    for entity in actor._objs:
        for shape in entity.find_component_by_type(sapien.render.RenderBodyComponent).render_shapes:
            for part in shape.parts:
                if part.material.base_color_texture is not None:
                    part.material.set_base_color_texture(image)


class PickObjectEnv(PickSingleYCBEnv):
    """PickSingleYCB over any YCB-layout object set, with the suite's objects, spawn region and table.

    Differences from ManiSkill's task, each for the paper's setup: objects come from ``model_ids`` under
    ``object_set.root`` (not ManiSkill's asset folder), x, y of object and goal are drawn from ``region``
    with the episode's seeded numpy RNG, the goal sphere is visible to cameras, and only the wrist camera
    renders (ManiSkill also renders a fixed 'base_camera' for this task).
    """

    def __init__(self, *args, object_set: ObjectSet, model_ids: list[str], region: str = "square",
                 table_texture: Path | None = None, robot_init_qpos_noise: float = 0.02, num_envs: int = 1,
                 **kwargs):
        if region not in REGIONS:
            raise ValueError(f"unknown region {region!r}; choose one of: {', '.join(REGIONS)}")
        self.object_set, self.region, self.table_texture = object_set, region, table_texture
        self.robot_init_qpos_noise = robot_init_qpos_noise
        self.all_model_ids = np.array(sorted(model_ids))
        # ManiSkill's default: a new object every reset with one env; fixed objects with many (GPU) envs.
        kwargs.setdefault("reconfiguration_freq", 1 if num_envs == 1 else 0)
        BaseEnv.__init__(self, *args, robot_uids="panda_wristcam", num_envs=num_envs, **kwargs)

    @property
    def _default_sensor_configs(self):
        return []

    def _load_scene(self, options: dict):
        self.table_scene = TableSceneBuilder(env=self, robot_init_qpos_noise=self.robot_init_qpos_noise)
        self.table_scene.build()
        if self.table_texture is not None:
            _set_texture(self.table_scene.table, self.table_texture)
        self.model_ids = self._batched_episode_rng.choice(self.all_model_ids, replace=True)
        self._objs: list[Actor] = []
        for i, model_id in enumerate(self.model_ids):
            builder = build_object_actor(self.scene, self.object_set.root, model_id, self.object_set.info[model_id])
            builder.initial_pose = sapien.Pose(p=[0, 0, 0])
            builder.set_scene_idxs([i])
            self._objs.append(builder.build(name=f"{model_id}-{i}"))
            self.remove_from_state_dict_registry(self._objs[-1])
        self.obj = Actor.merge(self._objs, name="ycb_object")
        self.add_to_state_dict_registry(self.obj)
        self.goal_site = actors.build_sphere(self.scene, radius=self.goal_thresh, color=[0, 1, 0, 1],
                                             name="goal_site", body_type="kinematic", add_collision=False,
                                             initial_pose=sapien.Pose())

    def _initialize_episode(self, env_idx: torch.Tensor, options: dict):
        with torch.device(self.device):
            self.table_scene.initialize(env_idx)
            rngs = self._batched_episode_rng[env_idx].rngs
            obj_xy = np.stack([sample_xy(rng, self.region) for rng in rngs])
            yaw = np.array([rng.uniform(0, 2 * np.pi) for rng in rngs])
            goal_xy = np.stack([sample_xy(rng, self.region) for rng in rngs])
            lift = np.array([rng.uniform(0, 0.3) for rng in rngs])
            obj_z = self.object_zs[env_idx].cpu().numpy()
            xyz = np.concatenate([obj_xy, obj_z[:, None]], 1)
            quat = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], 1)
            self.obj.set_pose(Pose.create_from_pq(p=torch.as_tensor(xyz, dtype=torch.float32),
                                                  q=torch.as_tensor(quat, dtype=torch.float32)))
            goal = np.concatenate([goal_xy, (obj_z + lift)[:, None]], 1)
            self.goal_site.set_pose(Pose.create_from_pq(torch.as_tensor(goal, dtype=torch.float32)))
            qpos = np.array([0.0, 0, 0, -np.pi * 2 / 3, 0, np.pi * 2 / 3, np.pi / 4, 0.04, 0.04])
            qpos[:-2] += self._episode_rng.normal(0, self.robot_init_qpos_noise, len(qpos) - 2)
            self.agent.reset(qpos)
            self.agent.robot.set_root_pose(sapien.Pose([-0.615, 0, 0]))
