"""The highway driving env against its real simulators (highway-env traffic, MuJoCo rendering)."""

import copy

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from highway_env.road.road import Road

from pvm_mbrl.envs.driving import COLLISION_COST, FRAME_SECONDS, DrivingEnv
from pvm_mbrl.envs.driving_traffic import BRAKE_DEC, EGO_MAX_SPEED, MAX_LATERAL_ACC, THROTTLE_ACC, steering_limit
from pvm_mbrl.envs.registry import make_env
from pvm_mbrl.envs.suites import load_suites

SUITES = list(load_suites("driving").suites)
FULL_THROTTLE = np.array([0.0, 1.0], np.float32)


@pytest.fixture
def make():
    """DrivingEnv factory that closes its GL contexts after the test."""
    envs = []

    def build(**kwargs):
        envs.append(DrivingEnv(**{"size": 64, **kwargs}))
        return envs[-1]

    yield build
    for env in envs:
        env.close()


def _luminance(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_forward_progress_is_rewarded_and_bounded_by_the_stated_maximum(make):
    env = make(vehicles=0, max_frames=200)
    env.reset(seed=0)
    start_x, total, rewards = env.ego.position[0], 0.0, []
    while True:
        _, reward, terminated, truncated, info = env.step(FULL_THROTTLE)
        rewards.append(reward)
        total += reward
        if terminated or truncated:
            break
    assert all(r > 0 for r in rewards)  # every step moves the car forward
    assert total == pytest.approx(env.ego.position[0] - start_x)  # reward = metres driven along the road
    assert truncated and not terminated and info["end_reason"] == "time_limit" and len(rewards) == 100
    seconds = 200 * FRAME_SECONDS  # the suite file's bound, for a 10 s episode instead of 50 s
    bound = EGO_MAX_SPEED * seconds - EGO_MAX_SPEED**2 / (2 * THROTTLE_ACC)
    assert 0.99 * bound < total <= bound
    assert load_suites("driving").get("id").max_return == pytest.approx(
        EGO_MAX_SPEED * 50 - EGO_MAX_SPEED**2 / (2 * THROTTLE_ACC), abs=0.05)


def test_braking_and_steering_cost_what_the_formula_says(make):
    env = make(vehicles=0)
    env.reset(seed=1)
    for _ in range(20):
        env.step(FULL_THROTTLE)
    speed = env.ego.speed
    _, reward, _, _, info = env.step(np.array([0.5, -1.0]))
    assert env.ego.speed == pytest.approx(speed - 2 * FRAME_SECONDS * BRAKE_DEC)
    assert info["steer_penalty"] == pytest.approx(2 * 0.5)  # |steer| in each of the 2 frames
    assert reward == pytest.approx(info["distance"] - info["steer_penalty"])


def test_steering_is_grip_limited_at_speed():
    assert steering_limit(1.0) == pytest.approx(0.6)  # the steering lock at walking pace
    for speed in (15.0, 25.0, 30.0):
        beta = np.arctan(np.tan(steering_limit(speed)) / 2)
        assert speed**2 * np.sin(beta) / 2.5 == pytest.approx(MAX_LATERAL_ACC)  # bicycle model, L / 2 = 2.5 m


def test_forced_collision_ends_the_episode_with_the_impulse_penalty(make):
    env = make(vehicles=1)
    env.reset(seed=2)
    blocker, ego = env.traffic[0], env.ego
    blocker.position = ego.position + np.array([25.0, 0.0])  # parked in the ego's lane, 25 m ahead
    blocker.lane_index = blocker.target_lane_index = ego.lane_index
    blocker.lane, blocker.target_speed, blocker.enable_lane_change = ego.lane, 0.0, False
    for _ in range(60):
        _, reward, terminated, truncated, info = env.step(FULL_THROTTLE)
        if terminated or truncated:
            break
    assert terminated and not truncated and info["end_reason"] == "collision"
    assert info["collision_impulse"] > 1000.0  # 1800 kg x a closing speed of metres per second
    assert reward == pytest.approx(info["distance"] - COLLISION_COST * info["collision_impulse"])
    assert reward < info["distance"]


def test_driving_into_the_guard_rail_is_a_collision(make):
    env = make(vehicles=0)
    env.reset(seed=3)
    for _ in range(200):
        _, reward, terminated, truncated, info = env.step(np.array([1.0, 1.0]))  # hard right, full throttle
        if terminated or truncated:
            break
    assert terminated and info["end_reason"] == "guard_rail" and info["collision_impulse"] > 0
    assert reward == pytest.approx(info["distance"] - COLLISION_COST * info["collision_impulse"]
                                   - info["steer_penalty"])


def test_traffic_is_in_the_camera_image_where_the_renderer_says(make):
    with_traffic, empty = make(), make(vehicles=0)
    with_traffic.reset(seed=2)
    empty.reset(seed=2)  # same ego lane and weather, no other cars
    for _ in range(5):
        image = with_traffic.step(FULL_THROTTLE)[0]["image"]
        bare = empty.step(FULL_THROTTLE)[0]["image"]
    mask = with_traffic.vehicle_mask()
    assert (mask >= 0).mean() > 0.005 and len(np.unique(mask[mask >= 0])) >= 2  # several cars in view
    assert mask.max() < len(with_traffic.traffic)
    changed = np.abs(image.astype(int) - bare.astype(int)).max(-1) > 20
    assert changed[mask >= 0].mean() > 0.9 and changed[mask < 0].mean() < 0.02


def test_frames_are_scenes_not_blank_at_every_size(make):
    for size in (64, 128, 224):
        env = make(size=size)
        image = env.reset(seed=0)[0]["image"]
        assert image.shape == (size, size, 3) and image.dtype == np.uint8
        assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 100


def test_weathers_change_the_image_as_expected_over_an_identical_scene(make):
    images, states = {}, {}
    for suite in SUITES:
        env = make(suite=suite)
        env.reset(seed=4)
        for _ in range(8):
            image = env.step(np.array([0.05, 0.6]))[0]["image"]
        images[suite] = _luminance(image)
        states[suite] = np.array([[*v.position, v.heading, v.speed] for v in env.road.vehicles])
        assert image.std() > 8  # even a foggy night shows something
    for suite in SUITES:
        assert np.array_equal(states[suite], states["id"])  # the weather never touches the traffic
    for suite in ("weak_high_light", "weak_noisy_low_light"):
        assert images[suite].mean() < 0.8 * images["id"].mean()  # low sun, clouds
    for suite in ("strong_low_light", "strong_noisy_low_light"):
        assert images[suite].mean() < 0.5 * images["id"].mean()  # night
        assert images[suite].std() < 0.6 * images["id"].std()  # fog hides the far scene


def test_fog_lowers_contrast_of_the_same_frame(make):
    contrast = []
    for fog in (0, 50, 100):
        env = make(weather={"fog_density": fog, "sun_altitude_angle": 60})
        env.reset(seed=5)
        luminance = _luminance(env.step(FULL_THROTTLE)[0]["image"])
        contrast.append(np.percentile(luminance, 95) - np.percentile(luminance, 5))
    assert contrast[0] > contrast[1] > contrast[2]


def test_the_seed_varies_the_weather_slightly_within_the_suite(make):
    env = make(suite="weak_noisy_low_light")
    suite = load_suites("driving").get("weak_noisy_low_light").params
    seen = set()
    for seed in range(4):
        env.reset(seed=seed)
        for name, amplitude in suite["jitter"].items():
            assert abs(getattr(env.episode_weather, name) - suite["weather"][name]) <= amplitude
        seen.add(env.episode_weather.fog_density)
    assert len(seen) == 4


def test_gymnasium_env_checker_passes_with_rain_and_noise(make):
    check_env(make(suite="weak_noisy_low_light"), skip_render_check=True)


def test_same_seed_same_episode_with_corruptions(make):
    env = make(suite="strong_noisy_low_light")
    first = [env.reset(seed=7)[0]["image"], env.step(FULL_THROTTLE)[0]["image"]]
    again = [env.reset(seed=7)[0]["image"], env.step(FULL_THROTTLE)[0]["image"]]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], env.reset(seed=8)[0]["image"])


def test_vectorised_road_matches_highway_env(make):
    env = make()
    env.reset(seed=3)
    fast = env.road
    plain = copy.deepcopy(fast)
    plain.__class__ = Road  # highway-env's own neighbour and collision search
    for road in (fast, plain):
        road.vehicles[0].act({"steering": 0.02, "acceleration": 3.0})
        for _ in range(300):
            road.act()
            road.step(FRAME_SECONDS)
    assert np.array_equal([v.position for v in fast.vehicles], [v.position for v in plain.vehicles])
    assert [v.lane_index for v in fast.vehicles] == [v.lane_index for v in plain.vehicles]
    assert len({v.lane_index for v in fast.vehicles}) > 1


def test_training_config_builds_the_env():
    from pvm_mbrl.training.config import compose_config

    cfg = compose_config(["env=driving", "env.suite=strong_low_light"])
    env = make_env(cfg.env, seed=0)
    try:
        assert env.suite.name == "strong_low_light" and env.action_repeat == 2
        assert env.observation_space["image"].shape == (64, 64, 3)
    finally:
        env.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"suite": "sunny"}, r"unknown driving suite 'sunny'.*id, weak_high_light"),
    ({"suite": "weak"}, r"'weak' is a group.*weak_high_light, weak_noisy_low_light"),
    ({"size": 96}, r"unsupported driving image size 96.*64, 128, 224"),
    ({"task": "city"}, r"unknown driving task 'city'.*highway"),
    ({"weather": {"snow": 10}}, r"unknown weather parameters \['snow'\].*fog_density"),
])
def test_bad_input_names_the_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DrivingEnv(**kwargs)
