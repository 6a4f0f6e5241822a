"""The table-top env on the real simulator (ManiSkill3 CPU physics, lavapipe rendering).

One env per suite for the whole module (each is ~1 GB and ~8 s to build); few resets, 64x64 images.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pvm_mbrl.envs.tabletop import TabletopEnv, TabletopVectorEnv
from pvm_mbrl.envs.tabletop_objects import (
    STANDIN_OBJECTS,
    YCB_SUBDIR,
    check_object,
    resolve_object_set,
    split_objects,
)
from pvm_mbrl.envs.tabletop_scene import ID_HALF_SQUARE, in_region, sample_xy

SPLIT_SEED = 1


@pytest.fixture(scope="module")
def envs():
    made = {suite: TabletopEnv(size=64, suite=suite, split_seed=SPLIT_SEED, masks=True)
            for suite in ("id", "easy_ood", "hard_ood")}
    yield made
    for env in made.values():
        env.close()


def test_object_split_is_disjoint_80_20_and_fixed_by_the_seed():
    ids = resolve_object_set().ids
    assert len(ids) >= 20, "the stand-in set must have at least 20 objects for the split to mean something"
    train, heldout = split_objects(ids, seed=0)
    assert not set(train) & set(heldout) and sorted(train + heldout) == ids
    assert len(heldout) == round(0.2 * len(ids))
    assert split_objects(ids, seed=0) == (train, heldout)
    assert len({tuple(split_objects(ids, seed=s)[1]) for s in range(5)}) > 1  # seeds choose different splits


def test_standin_objects_are_at_least_20_visibly_distinct_ones():
    ids = {spec.id for spec in STANDIN_OBJECTS}
    sources = {(spec.source, spec.dims, spec.texture, spec.color) for spec in STANDIN_OBJECTS}
    assert len(ids) == len(sources) == len(STANDIN_OBJECTS) >= 20


def test_region_sampling_covers_square_and_ring():
    rng = np.random.RandomState(0)
    inner = np.array([sample_xy(rng, "inner") for _ in range(2000)])
    ring = np.array([sample_xy(rng, "ring") for _ in range(2000)])
    assert np.abs(inner).max() <= ID_HALF_SQUARE and np.abs(inner).max() > 0.085
    assert (np.abs(ring).max(1) > ID_HALF_SQUARE).all() and np.abs(ring).max() <= 0.1
    assert np.abs(ring).min() < 0.01  # the ring's sides reach across, not only its corners
    with pytest.raises(ValueError, match="unknown region 'donut'.*inner"):
        sample_xy(rng, "donut")


@pytest.mark.parametrize("suite,region,subset", [("id", "inner", "train"), ("easy_ood", "ring", "heldout")])
def test_positions_and_objects_follow_the_suite(envs, suite, region, subset):
    env = envs[suite]
    allowed = env.train_ids if subset == "train" else env.heldout_ids
    seen = set()
    for seed in range(12):
        env.reset(seed=100 + seed)
        assert in_region(env.object_pose(), region), (suite, env.object_pose())
        assert in_region(env.goal_position(), region), (suite, env.goal_position())
        assert env.current_object in allowed
        seen.add(env.current_object)
    assert len(seen) > 1  # a new object each episode


def test_same_seed_same_episode_and_other_seeds_differ(envs):
    env = envs["id"]
    first = env.reset(seed=7)[0]["image"]
    pose, goal, name = env.object_pose(), env.goal_position(), env.current_object
    env.step(env.action_space.sample())
    again = env.reset(seed=7)[0]["image"]
    assert np.array_equal(first, again) and name == env.current_object
    assert np.allclose(pose, env.object_pose()) and np.allclose(goal, env.goal_position())
    env.reset(seed=8)
    assert not np.allclose(pose, env.object_pose())


def test_frames_show_a_scene_and_masks_cover_the_object(envs):
    for seed in (1, 2, 3):
        obs, info = envs["id"].reset(seed=seed)
        image, mask = obs["image"], info["object_mask"]
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert image.std() > 10 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50
        assert mask.shape == (64, 64) and mask.dtype == bool and 0 < mask.sum() < mask.size / 2
        # the object's pixels look different from the table around them
        assert np.abs(image[mask].mean(0) - image[~mask].mean(0)).max() > 10


def test_hard_ood_changes_only_the_table(envs):
    easy, hard = envs["easy_ood"], envs["hard_ood"]
    assert easy.heldout_ids == hard.heldout_ids
    changed_fraction = []
    for seed in (11, 12):
        easy_obs, easy_info = easy.reset(seed=seed)
        hard_obs, hard_info = hard.reset(seed=seed)
        assert easy.current_object == hard.current_object
        assert np.allclose(easy.object_pose(), hard.object_pose())
        assert np.allclose(easy.goal_position(), hard.goal_position())
        mask = easy_info["object_mask"]
        assert np.array_equal(mask, hard_info["object_mask"]) and mask.any()
        a, b = easy_obs["image"].astype(int), hard_obs["image"].astype(int)
        assert np.array_equal(a[mask], b[mask])  # the object looks the same
        changed = np.abs(a - b).max(-1) > 8
        changed_fraction.append(changed.mean())
        assert b[changed].mean() < a[changed].mean() - 20  # the new table is darker
    assert min(changed_fraction) > 0.5  # the table fills most of the wrist camera's view


def test_gymnasium_env_checker_passes(envs):
    check_env(envs["id"], skip_render_check=True)


def test_rewards_are_normalised_and_episodes_last_50_steps(envs):
    env = envs["id"]
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, total, done = 0, 0.0, False
    while not done:
        _, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
        assert 0.0 <= reward <= 1.0 and set(info) >= {"success", "is_grasped", "object_mask"}
        steps, total, done = steps + 1, total + reward, terminated or truncated
    assert steps == 50 and truncated and not terminated
    assert 0 < total < 50



def test_vector_env_auto_resets_the_step_after_all_episodes_end():
    """The batched env the GPU backend uses; on CPU ManiSkill simulates one env, so num_envs=1 here."""
    with pytest.raises(ValueError, match="num_envs=2 needs ManiSkill's GPU simulation"):
        TabletopVectorEnv(2, device="cpu")
    env = TabletopVectorEnv(1, size=64, suite="easy_ood", split_seed=SPLIT_SEED, episode_steps=10, masks=True,
                            vectors=True, device="cpu")
    try:
        obs, info = env.reset(seed=3)
        assert obs["image"].shape == (1, 64, 64, 3) and obs["state"].shape == (1, 29)
        assert info["object_mask"].shape == (1, 64, 64) and info["object_mask"].any()
        first = obs["image"].copy()
        actions = np.zeros((1, *env.single_action_space.shape), np.float32)
        for t in range(10):
            obs, reward, terminated, truncated, _ = env.step(actions)
            assert reward.shape == (1,) and not terminated.any() and truncated.all() == (t == 9)
        obs, reward, terminated, truncated, _ = env.step(actions)  # the next step resets
        assert reward[0] == 0 and not truncated.any()
        assert not np.array_equal(obs["image"], first)  # a new episode (seeded from the main RNG), not step 10
    finally:
        env.close()

def test_manifest_records_the_object_set_and_split(envs, tmp_path):
    path = envs["id"].write_manifest(tmp_path / "run")
    record = json.loads(path.read_text())
    assert record["split"] == {"train": envs["id"].train_ids, "heldout": envs["id"].heldout_ids}
    assert set(record["ids"]) == set(envs["id"].train_ids) | set(envs["id"].heldout_ids)
    if not record["real_ycb"]:
        assert all(o["accepted"] for o in record["objects"] if o["id"] in record["ids"])


def test_bad_settings_name_the_accepted_values():
    with pytest.raises(ValueError, match="unknown tabletop suite 'medium_ood'.*id, easy_ood, hard_ood"):
        TabletopEnv(suite="medium_ood")
    with pytest.raises(ValueError, match="unsupported tabletop image size 96.*64, 128, 224"):
        TabletopEnv(size=96)
    with pytest.raises(ValueError, match="unknown control_mode 'pd_joint_pos'.*pd_joint_delta_pos"):
        TabletopEnv(control_mode="pd_joint_pos")


def test_object_check_rejects_a_mesh_that_crashes_the_physics_engine(tmp_path):
    """A box collision mesh in binary PLY segfaults SAPIEN 3.0.3's loader: the check must survive it."""
    import shutil

    import trimesh

    source = resolve_object_set()
    good = source.ids[0]
    models = tmp_path / YCB_SUBDIR / "models"
    shutil.copytree(source.root / YCB_SUBDIR / "models" / good, models / good)
    shutil.copytree(models / good, models / "bad_box")
    trimesh.creation.box(extents=(0.08, 0.045, 0.04)).export(models / "bad_box" / "collision.ply")
    info = {name: {"bbox": {"min": [-0.04, -0.0225, -0.02], "max": [0.04, 0.0225, 0.02]}, "scales": [1.0]}
            for name in (good, "bad_box")}
    info[good] = source.info[good]
    (tmp_path / YCB_SUBDIR / "info_pick_v0.json").write_text(json.dumps(info))
    assert check_object(tmp_path, good)[0]
    ok, message = check_object(tmp_path, "bad_box")
    assert not ok and "exit status" in message


def test_a_machine_without_vulkan_gets_a_clear_error():
    code = "from pvm_mbrl.envs.tabletop import check_rendering; check_rendering()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "VK_ICD_FILENAMES": "/nonexistent/icd.json"})
    assert done.returncode != 0
    assert "Vulkan" in done.stderr and "mesa-vulkan-drivers" in done.stderr and "bookworm-backports" in done.stderr


@pytest.mark.slow
def test_dreamer_trains_on_tabletop_briefly(tiny_overrides):
    from pvm_mbrl.training.config import compose_config
    from pvm_mbrl.training.loop import train

    overrides = [o for o in tiny_overrides if not o.startswith("env.size")]
    cfg = compose_config([*overrides, "env=tabletop", "env.size=64", "seed=2", "steps=150", "prefill=60",
                          "train_ratio=8", "checkpoint_every=100", "log_every=50", "eval_every=100000",
                          "eval_episodes=1"])
    result = train(cfg)
    assert np.isfinite(result["eval/return"])
    run_dir = Path(cfg.run_dir)
    record = json.loads((run_dir / "tabletop_objects.json").read_text())
    assert record["split"]["heldout"] == split_objects(record["ids"], seed=2)[1]  # the run's seed, not 0
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/rec" in m and np.isfinite(m["loss/rec"]) for m in metrics)


def test_batched_simulator_is_used_only_where_it_pays_off():
    import torch
    from omegaconf import OmegaConf

    from pvm_mbrl.envs.registry import make_batched_env

    cfg = OmegaConf.create({"name": "tabletop:pick_single_ycb", "size": 64, "action_repeat": 1, "num_envs": 4})
    if torch.cuda.is_available():
        batched = make_batched_env(cfg, seed=0)
        assert batched.num_envs == 4
        batched.close()
    else:  # ManiSkill's CPU backend simulates one env per process: the loop falls back to worker processes
        assert make_batched_env(cfg, seed=0) is None
    assert make_batched_env(OmegaConf.create({"name": "dmc:cartpole-balance", "num_envs": 4}), seed=0) is None
