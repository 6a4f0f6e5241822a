import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pvm_mbrl.envs.dmc import DMCEnv, shadow_map_size


def test_gymnasium_env_checker_passes():
    env = DMCEnv("cartpole-balance", size=32, vectors=True)
    check_env(env, skip_render_check=True)
    env.close()


def test_frames_are_rendered_scenes_not_blank():
    env = DMCEnv("walker-walk", size=64)
    obs, _ = env.reset(seed=0)
    image = obs["image"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image.std() > 10  # a scene with structure, not a constant frame
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50


def test_action_repeat_sums_rewards_and_episode_truncates():
    env = DMCEnv("cartpole-balance", size=32, action_repeat=4)
    env.reset(seed=0)
    steps, total, done = 0, 0.0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
        assert 0.0 <= reward <= 4.0
        total, steps, done = total + reward, steps + 1, terminated or truncated
    assert steps == 250 and truncated and not terminated  # 1000 physics steps / repeat 4
    assert total > 100  # balancing from an upright start earns reward


def test_same_seed_same_episode():
    env = DMCEnv("cartpole-swingup", size=32)
    first = env.reset(seed=7)[0]["image"]
    env.step(np.ones(1, np.float32))
    assert np.array_equal(first, env.reset(seed=7)[0]["image"])


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError, match="unknown dmc task 'cartpole-dance'.*cartpole-balance"):
        DMCEnv("cartpole-dance")


def test_shadow_map_size_scales_with_the_image_and_keeps_the_models_as_a_ceiling():
    assert shadow_map_size(64, 2048) == 1024
    assert shadow_map_size(50, 2048) == 1024  # 800 rounds up to a power of two
    assert shadow_map_size(128, 2048) == 2048
    assert shadow_map_size(224, 2048) == 2048
    assert shadow_map_size(64, 512) == 512


def test_smaller_shadow_map_renders_nearly_the_same_frames():
    """The cheaper shadow map (see ``shadow_map_size``) must not change what the agent sees."""
    env = DMCEnv("walker-stand", size=64, seed=3)
    assert env._env.physics.model.vis.quality.shadowsize == 1024
    reference = DMCEnv("walker-stand", size=64, seed=3)
    reference._env.physics.model.vis.quality.shadowsize = 2048
    for frame, reference_frame in zip(_frames(env), _frames(reference), strict=True):
        assert np.abs(frame.astype(int) - reference_frame).mean() < 0.1


def _frames(env: DMCEnv) -> list[np.ndarray]:
    frames = [env.reset(seed=3)[0]["image"]]
    for _ in range(5):
        frames.append(env.step(np.ones(env.action_space.shape, np.float32))[0]["image"])
    return frames
