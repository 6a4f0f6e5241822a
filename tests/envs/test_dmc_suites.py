"""DeepMind Control visual shift suites (envs/suites/dmc.yaml): only appearance changes, within the file's ranges."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

from pvm_mbrl.analysis.measures import suite_normalised_return
from pvm_mbrl.envs.dmc import DMCEnv
from pvm_mbrl.envs.dmc_appearance import Appearance, builtin_texture_data, builtin_texture_definitions, texture_dir
from pvm_mbrl.envs.suites import load_suites

SUITES = ["id", "easy_ood", "hard_ood"]
TASKS = ["cartpole-balance", "walker-stand", "cheetah-run", "finger-spin"]
PARAMS = {name: suite.params for name, suite in load_suites("dmc").suites.items()}


def geom_mask(env: DMCEnv, select) -> np.ndarray:
    """Pixels showing geoms for which ``select(model, geom id)`` holds (or the sky, for ``select=None``)."""
    physics = env._env.physics
    seg = physics.render(env.size, env.size, camera_id=env.camera, segmentation=True)
    ids, types = seg[..., 0], seg[..., 1]
    if select is None:
        return ids == -1
    model = physics.model.ptr
    chosen = [g for g in range(model.ngeom) if select(model, g)]
    return (types == 5) & np.isin(ids, chosen)  # 5: mjOBJ_GEOM


def self_material(model, geom: int) -> bool:
    return model.geom_matid[geom] >= 0 and model.material(model.geom_matid[geom]).name == "self"


def floor(model, geom: int) -> bool:
    return model.geom_matid[geom] >= 0 and model.material(model.geom_matid[geom]).name == "grid"


def rollout(task: str, suite: str, seed: int, steps: int = 4):
    """An env after ``steps`` seeded random actions from ``reset(seed)``: (env, its last frame, states, rewards)."""
    env = DMCEnv(task, size=64, suite=suite)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    states, rewards = [env._env.physics.get_state().copy()], []
    for _ in range(steps):
        obs, reward, _, _, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        states.append(env._env.physics.get_state().copy())
        rewards.append(reward)
    return env, obs["image"], np.stack(states), rewards


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_physics_in_every_suite_and_only_appearance_changes(task):
    runs = {suite: rollout(task, suite, seed=11) for suite in SUITES}
    env_id, image_id, states_id, rewards_id = runs["id"]
    body_id, floor_id = geom_mask(env_id, self_material), geom_mask(env_id, floor)
    assert body_id.sum() > 20 and floor_id.sum() > 100  # the camera sees the body and the floor
    for suite in SUITES[1:]:
        env, image, states, rewards = runs[suite]
        assert np.array_equal(states, states_id) and rewards == rewards_id  # qpos, qvel, act: bit for bit
        assert np.array_equal(geom_mask(env, self_material), body_id)     # the same scene geometry
        difference = np.abs(image.astype(int) - image_id.astype(int)).sum(-1)
        assert difference[body_id].mean() > 20, f"{task} {suite}: the body is not recoloured"
        assert difference[floor_id].mean() > 20, f"{task} {suite}: the floor is unchanged"
        env.close()
    env_id.close()


def test_hard_ood_floor_is_dark_wood_and_sky_changes():
    env_id, image_id = rollout("walker-stand", "id", seed=2, steps=0)[:2]
    env, image = rollout("walker-stand", "hard_ood", seed=2, steps=0)[:2]
    model = env._env.physics.model.ptr
    grid = model.texture("grid").id
    start, size = model.tex_adr[grid], model.tex_width[grid] * model.tex_height[grid] * model.tex_nchannel[grid]
    wood = np.asarray(Image.open(texture_dir() / "dark-wood.png").convert("RGB"))
    texture = model.tex_data[start:start + size].reshape(model.tex_height[grid], model.tex_width[grid], 3)
    assert np.abs(texture.mean((0, 1)) - wood.mean((0, 1))).max() < 3  # the wood, resized
    floor_pixels, sky = geom_mask(env, floor), geom_mask(env, None)
    assert sky.sum() > 100
    for mask in (floor_pixels, sky):
        assert np.abs(image.astype(int) - image_id.astype(int)).sum(-1)[mask].mean() > 20
    # wood is brown (red > blue) where the training floor is blue
    assert image[floor_pixels].mean(0)[0] > image[floor_pixels].mean(0)[2]
    assert image_id[floor_pixels].mean(0)[2] > image_id[floor_pixels].mean(0)[0]
    env.close()
    env_id.close()


@pytest.mark.parametrize("suite", ["easy_ood", "hard_ood"])
def test_colours_are_drawn_within_the_files_ranges_and_written_into_the_model(suite):
    params = PARAMS[suite]
    env = DMCEnv("cartpole-balance", size=32, suite=suite)
    model = env._env.physics.model.ptr
    for seed in range(6):
        env.reset(seed=seed)
        drawn = env.appearance
        low, high = (np.asarray(params["body"]["rgb"][k]) for k in ("low", "high"))
        body = np.asarray(drawn["body"]["rgb"])
        assert np.all(low <= body) and np.all(body <= high)
        assert np.allclose(model.mat_rgba[model.material("self").id, :3], body, atol=1e-6)
        low, high = (np.asarray(params["skybox"]["rgb1"][k]) for k in ("low", "high"))
        assert np.all(low <= drawn["skybox"]["rgb1"]) and np.all(np.asarray(drawn["skybox"]["rgb1"]) <= high)
        if suite == "easy_ood":
            low, high = (np.asarray(params["floor"]["rgb1"][k]) for k in ("low", "high"))
            rgb1, rgb2 = np.asarray(drawn["floor"]["rgb1"]), np.asarray(drawn["floor"]["rgb2"])
            assert np.all(low <= rgb1) and np.all(rgb1 <= high) and np.allclose(rgb2, rgb1 + 0.1)
            grid = model.texture("grid").id
            pixels = model.tex_data[model.tex_adr[grid]:model.tex_adr[grid] + 300 * 300 * 3].reshape(-1, 3)
            for colour in (rgb1, rgb2):  # the checker's two colours are in the texture
                assert np.abs(pixels.astype(int) - colour * 255).max(1).min() <= 1
        else:
            assert drawn["floor"] == {"image": "dark-wood.png"}
    env.close()


def test_builtin_textures_are_regenerated_exactly():
    """With dm_control's own colours the regenerated grid equals the texture MuJoCo compiled for the task."""
    env = DMCEnv("cartpole-balance", size=32)
    model = env._env.physics.model.ptr
    grid = model.texture("grid").id
    data = builtin_texture_data(builtin_texture_definitions()["grid"])
    assert np.array_equal(data, model.tex_data[model.tex_adr[grid]:model.tex_adr[grid] + data.size])
    env.close()


@pytest.mark.parametrize("suite", SUITES)
def test_frames_are_scenes_not_blank(suite):
    env = DMCEnv("walker-stand", size=64, suite=suite)
    image = env.reset(seed=4)[0]["image"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image.std() > 10 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50
    env.close()


def test_gymnasium_env_checker_passes_for_a_shifted_env():
    env = DMCEnv("cartpole-balance", size=32, vectors=True, suite="hard_ood")
    check_env(env, skip_render_check=True)
    env.close()


def test_seed_fixes_colours_and_another_seed_changes_them():
    env = DMCEnv("cartpole-balance", size=32, suite="easy_ood")
    first = env.reset(seed=5)[0]["image"], env.appearance
    env.step(np.ones(1, np.float32))
    env.reset(seed=6)
    other = env.appearance
    again = env.reset(seed=5)[0]["image"], env.appearance
    assert np.array_equal(first[0], again[0]) and first[1] == again[1]
    for part in ("body", "floor", "skybox"):
        assert first[1][part] != other[part]
    env.reset()  # no seed: the next episode draws new colours from the same stream
    assert env.appearance != first[1]
    # each suite has its own colour stream: easy and hard colours of one seed are unrelated draws
    hard = DMCEnv("cartpole-balance", size=32, suite="hard_ood")
    hard.reset(seed=5)
    low_e, high_e = (np.asarray(PARAMS["easy_ood"]["body"]["rgb"][k]) for k in ("low", "high"))
    low_h, high_h = (np.asarray(PARAMS["hard_ood"]["body"]["rgb"][k]) for k in ("low", "high"))
    unit_easy = (np.asarray(first[1]["body"]["rgb"]) - low_e) / (high_e - low_e)
    unit_hard = (np.asarray(hard.appearance["body"]["rgb"]) - low_h) / (high_h - low_h)
    assert not np.allclose(unit_easy, unit_hard)
    env.close()
    hard.close()


def test_parts_a_model_lacks_are_skipped_and_the_rest_applied():
    from dm_control.mujoco import Physics

    params = {**PARAMS["easy_ood"],
              "extra": {"materials": ["no_such_material"], "rgb": {"low": [0, 0, 0], "high": [1, 1, 1]}},
              "walls": {"texture": "no_such_texture", "rgb1": {"low": [0, 0, 0], "high": [1, 1, 1]}}}
    env = DMCEnv("walker-stand", size=32)
    record = Appearance(params).apply(env._env.physics, np.random.default_rng(0))
    assert "skipped" in record["extra"] and "skipped" in record["walls"]
    assert not any("skipped" in record[part] for part in ("body", "floor", "skybox"))
    model = env._env.physics.model.ptr
    assert np.allclose(model.mat_rgba[model.material("self").id, :3], record["body"]["rgb"])
    env.close()
    # a bare model with no material or texture of dm_control's: every part is skipped, rendering still works
    bare = Physics.from_xml_string("<mujoco><worldbody><light pos='0 0 2'/><geom type='box' size='.2 .2 .2' "
                                   "rgba='1 0 0 1'/><camera name='c' pos='0 -1.5 0' xyaxes='1 0 0 0 0 1'/>"
                                   "</worldbody></mujoco>")
    record = Appearance(PARAMS["hard_ood"]).apply(bare, np.random.default_rng(0))
    assert all("skipped" in entry for entry in record.values())
    assert bare.render(16, 16, camera_id=0).std() > 0
    assert not Appearance(PARAMS["id"])  # id changes nothing


def test_bad_parts_are_refused():
    with pytest.raises(ValueError, match="either 'materials' or 'texture'"):
        Appearance({"body": {"rgb": {"low": [0, 0, 0], "high": [1, 1, 1]}}})
    with pytest.raises(ValueError, match="0 <= low <= high <= 1"):
        Appearance({"body": {"materials": ["self"], "rgb": {"low": [0.5, 0, 0], "high": [0.4, 1, 1]}}})
    with pytest.raises(FileNotFoundError, match="setup.sh"):
        Appearance({"floor": {"texture": "grid", "image": "no-such-wood.png"}})


def test_normalisation_constants_are_per_task():
    suites = load_suites("dmc", "walker-stand")
    assert suites.per_task and suites.task == "walker-stand" and list(suites.suites) == SUITES
    for suite in suites.suites.values():
        assert suite.max_return == 1000.0 and suite.random_return is not None and suite.random_episodes > 0
    cartpole = load_suites("dmc", "cartpole-balance").get("id")
    assert cartpole.random_return != suites.get("id").random_return
    unmeasured = load_suites("dmc", "hopper-hop").get("id")
    assert unmeasured.random_return is None
    with pytest.raises(ValueError, match=r"for task hopper-hop.*normalise dmc --task hopper-hop"):
        suite_normalised_return(unmeasured, 10.0)
