"""Highway driving from a front camera (``driving:highway``): the stand-in for RL-ViGen's CARLA highway.

No CARLA server can run here, so the task is rebuilt from parts that do: ``highway-env`` simulates the
four-lane highway, the ego car's kinematics and 40 IDM/MOBIL vehicles; MuJoCo draws what a camera on the
ego car's bonnet sees, with RL-ViGen's weathers (written in CARLA's weather parameters, see
``suites/driving.yaml``) turned into sun, sky, fog and headlights, and rain and sensor noise added to the
rendered image. The image is all the agent observes. docs/driving.md states the reward and every
difference from the CARLA original.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import albumentations as A
import cv2
import gymnasium as gym
import numpy as np

from pvm_mbrl.envs.rendering import configure_mujoco_gl
from pvm_mbrl.envs.suites import load_suites

configure_mujoco_gl()

import mujoco  # noqa: E402  (needs MUJOCO_GL set first)
from highway_env.road.lane import LineType, StraightLane  # noqa: E402
from highway_env.road.road import Road, RoadNetwork  # noqa: E402
from highway_env.vehicle.behavior import IDMVehicle  # noqa: E402
from highway_env.vehicle.kinematics import Vehicle  # noqa: E402

TASKS = ("highway",)
SIZES = (64, 128, 224)

# Simulation: CARLA's synchronous mode in RL-ViGen ticks at 20 Hz; frame_skip 2 (our action_repeat) => 10 Hz.
FRAME_SECONDS = 0.05
LANES, LANE_WIDTH, SHOULDER = 4, 3.5, 1.5
ROAD_LENGTH = 5000.0
START_X = 250.0  # the ego starts here every episode, at rest (RL-ViGen's highway scenario: speed 0)
SPEED_LIMIT = 25.0  # 90 km/h, Town04's highway
TRAFFIC_SPEEDS = (15.0, 20.0)  # CARLA's traffic manager drives 30% under the limit (17.5 m/s)
NEARBY, NEARBY_RANGE = 8, 40.0  # RL-ViGen: num_other_cars_nearby spawned within +-40 m of the ego
TRAFFIC_RANGE = (-150.0, 850.0)  # the other vehicles, along the road around the start
MIN_GAP = 10.0  # centre to centre in one lane (5 m between bumpers)

# Ego car: a Lincoln MKZ-sized kinematic bicycle (highway-env) with pedal and grip limits.
EGO_MASS = 1800.0  # kg, for the collision impulse
EGO_MAX_SPEED = 30.0  # m/s
THROTTLE_ACC, BRAKE_DEC = 3.5, 8.0  # m/s^2 at full pedal
MAX_STEER = 0.6  # rad of front-wheel angle at low speed
MAX_LATERAL_ACC = 8.0  # m/s^2, tyre grip: limits the wheel angle at speed

# RL-ViGen's CARLA reward per simulator frame: v_s * dt - 1e-4 * collision impulse - |steer|.
COLLISION_COST, STEER_COST = 1e-4, 1.0
STUCK_SPEED, STUCK_CHECK = 0.02, 100  # RL-ViGen ends episodes stuck below 0.02 m/s, checked every 100 frames

# Rendering.
CAMERA_POS, CAMERA_FOVY = (1.6, 0.0, 1.7), 60.0  # RL-ViGen's 'foresight0' camera, fov 60
CULL_BEHIND, CULL_AHEAD = -8.0, 400.0  # vehicles outside this span along the ego's heading cannot be seen
STRIP_PERIOD = 48.0  # the roadside repeats every 48 m, so the road strip follows the ego in 48 m jumps
VISIBLE, HIDDEN = 1, 3  # geom groups of drawn and culled vehicles
SUPERSAMPLE = 2  # render at twice the size and average (anti-aliasing)
CAR_PAINTS = ((0.9, 0.9, 0.88), (0.08, 0.08, 0.09), (0.62, 0.63, 0.65), (0.35, 0.36, 0.38), (0.7, 0.06, 0.05),
              (0.1, 0.2, 0.55), (0.05, 0.1, 0.25), (0.2, 0.35, 0.25), (0.75, 0.68, 0.52), (0.85, 0.65, 0.1))


@dataclass(frozen=True)
class Weather:
    """CARLA's ``WeatherParameters`` that RL-ViGen's suites set (0-100 scales; angles in degrees)."""

    cloudiness: float = 0.0
    precipitation: float = 0.0
    precipitation_deposits: float = 0.0
    wind_intensity: float = 0.0
    fog_density: float = 0.0
    sun_altitude_angle: float = 90.0
    sun_azimuth_angle: float = 0.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, float]) -> Weather:
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown weather parameters {unknown}; accepted: {', '.join(names)}")
        return cls(**{k: float(v) for k, v in values.items()})

    def jittered(self, amplitudes: Mapping[str, float], rng: np.random.Generator) -> Weather:
        """Each named parameter moved uniformly within +-amplitude (the seed's slight weather change)."""
        Weather.from_mapping(amplitudes)  # names must be weather parameters
        bounds = {"sun_altitude_angle": (-90.0, 90.0), "sun_azimuth_angle": (-math.inf, math.inf)}
        changes = {name: float(np.clip(getattr(self, name) + rng.uniform(-amplitude, amplitude),
                                       *bounds.get(name, (0.0, 100.0))))
                   for name, amplitude in amplitudes.items()}
        return replace(self, **changes)


def _mix(a: tuple, b: tuple, t: float) -> tuple[float, ...]:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def _scale(a: tuple, s: float) -> tuple[float, ...]:
    return tuple(float(x * s) for x in a)


@dataclass(frozen=True)
class Look:
    """What a weather means to the renderer and the camera; derived by :func:`weather_look`."""

    sun_dir: tuple[float, float, float]
    sun_rgb: tuple[float, ...]
    ambient_rgb: tuple[float, ...]
    sky_top: tuple[float, ...]
    sky_horizon: tuple[float, ...]
    fog_rgb: tuple[float, ...]
    fog_start: float
    fog_end: float
    haze: float
    road_shade: float
    road_specular: float
    headlights: bool
    tail_emission: float
    head_emission: float
    rain_drops: str | None
    rain_slant: float
    rain_brightness: float
    noise_std: float


def weather_look(w: Weather) -> Look:
    """Map CARLA weather parameters to light, sky, fog, road wetness, rain streaks and sensor noise.

    Daylight follows the sun's altitude (civil twilight at -6 deg, full day from 15 deg); clouds dim the sun
    and grey the sky; fog density sets the visibility distance, 1.5 km when clear down to 40 m at 100 (CARLA's
    densest fog); at night fog glows grey in the headlights instead of hiding everything in black; puddles
    darken and gloss the road; below dusk the ego's headlights are on; rain draws streaks slanted by the
    wind; the darker the scene the more sensor noise.
    """
    overcast, rain, wet = w.cloudiness / 100, w.precipitation / 100, w.precipitation_deposits / 100
    daylight = float(np.clip((w.sun_altitude_angle + 6) / 21, 0, 1) ** 0.5)
    warm = float(np.clip((25 - w.sun_altitude_angle) / 25, 0, 1)) * (1 - overcast) * (daylight > 0)
    direct = float(np.clip(3 * math.sin(math.radians(w.sun_altitude_angle)), 0, 1)) * (1 - 0.8 * overcast)
    direct *= 1 - 0.3 * rain
    altitude = math.radians(max(w.sun_altitude_angle, 5.0))
    azimuth = math.radians(w.sun_azimuth_angle + 90.0)  # azimuth 0: the sun beside the road, as on Town04
    sun_dir = (-math.cos(altitude) * math.cos(azimuth), -math.cos(altitude) * math.sin(azimuth), -math.sin(altitude))
    sun_rgb = _scale(_mix((1.0, 0.98, 0.94), (1.0, 0.72, 0.45), warm), 0.75 * direct)
    ambient = 0.04 + daylight * (0.36 - 0.1 * overcast - 0.06 * rain)
    ambient_rgb = _scale(_mix((0.92, 0.96, 1.04), (1.0, 1.0, 1.0), overcast), ambient)
    sky_light = 0.03 + 0.97 * daylight * (1 - 0.35 * rain) * (1 - 0.25 * overcast)
    sky_top = _scale(_mix((0.22, 0.42, 0.85), (0.5, 0.52, 0.56), overcast), sky_light)
    horizon = _mix(_mix((0.7, 0.8, 0.95), (0.68, 0.69, 0.71), overcast), (0.98, 0.7, 0.45), 0.7 * warm)
    sky_horizon = _scale(horizon, sky_light)
    visibility = 1500.0 * (40.0 / 1500.0) ** (w.fog_density / 100) * (1 - 0.4 * rain)
    headlights = daylight < 0.35
    fog_rgb = _mix(sky_horizon, _scale((0.72, 0.73, 0.75), max(sky_light, 0.2 * headlights)), w.fog_density / 100)
    drops = None if rain <= 0 else "drizzle" if rain < 0.25 else "default" if rain < 0.5 else \
        "heavy" if rain < 0.85 else "torrential"
    return Look(
        sun_dir=sun_dir, sun_rgb=sun_rgb, ambient_rgb=ambient_rgb, sky_top=sky_top,
        sky_horizon=sky_horizon, fog_rgb=fog_rgb, fog_start=0.15 * visibility, fog_end=visibility,
        haze=0.15 + 0.6 * w.fog_density / 100, road_shade=1 - 0.4 * wet, road_specular=0.05 + 0.5 * wet,
        headlights=headlights, tail_emission=0.15 + 0.85 * (1 - daylight), head_emission=1 - daylight,
        rain_drops=drops, rain_slant=0.8 * w.wind_intensity / 100, rain_brightness=0.45 + 0.55 * daylight,
        noise_std=0.07 * (1 - daylight) + 0.02 * rain,
    )


def steering_limit(speed: float) -> float:
    """Largest front-wheel angle (rad) at ``speed``: the lock at low speed, tyre grip at high speed.

    In highway-env's bicycle model the lateral acceleration is v^2 sin(beta) / (L/2) with
    tan(beta) = tan(delta) / 2; capping it at MAX_LATERAL_ACC keeps full steering a hard but drivable turn.
    """
    sin_beta = min(1.0, MAX_LATERAL_ACC * (Vehicle.LENGTH / 2) / max(speed, 1e-3) ** 2)
    return min(MAX_STEER, math.atan(2 * math.tan(math.asin(sin_beta))))


class StraightRoad(Road):
    """highway-env's ``Road`` with its neighbour and collision searches vectorised; same rules, straight lanes.

    ``Road.neighbour_vehicles`` and ``Road.step`` compare every pair of the 41 vehicles in Python, which cost
    more than rendering. Positions only change in ``step``, so ``act`` caches them once per frame.
    """

    _positions: np.ndarray | None = None

    def act(self) -> None:
        self._positions = np.array([v.position for v in self.vehicles])
        self._index = {id(v): i for i, v in enumerate(self.vehicles)}
        try:
            super().act()
        finally:
            self._positions = None

    def neighbour_vehicles(self, vehicle: Vehicle, lane_index: tuple | None = None) -> tuple:
        lane_index = lane_index or vehicle.lane_index
        if self._positions is None or self.objects or not lane_index:
            return super().neighbour_vehicles(vehicle, lane_index)
        lane = self.network.get_lane(lane_index)
        delta = self._positions - lane.start
        s_all, lateral = delta @ lane.direction, delta @ lane.direction_lateral
        s = lane.local_coordinates(vehicle.position)[0]
        on = (np.abs(lateral) <= lane.width / 2 + 1) & (s_all >= -lane.VEHICLE_LENGTH)
        on &= s_all < lane.length + lane.VEHICLE_LENGTH  # the same test as AbstractLane.on_lane(margin=1)
        if id(vehicle) in self._index:
            on[self._index[id(vehicle)]] = False
        ahead, behind = np.flatnonzero(on & (s_all >= s)), np.flatnonzero(on & (s_all < s))
        front = self.vehicles[ahead[np.argmin(s_all[ahead])]] if ahead.size else None
        rear = self.vehicles[behind[np.argmax(s_all[behind])]] if behind.size else None
        return front, rear

    def step(self, dt: float) -> None:
        if self.objects:
            return super().step(dt)
        for vehicle in self.vehicles:
            vehicle.step(dt)
        positions = np.array([v.position for v in self.vehicles])
        diagonal = np.array([v.diagonal for v in self.vehicles])
        reach = np.array([v.speed for v in self.vehicles]) * dt
        distance = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        # RoadObject._is_colliding's spherical pre-check, for all pairs at once; survivors get the exact test
        close = distance <= (diagonal[:, None] + diagonal[None]) / 2 + reach[:, None]
        for i, j in zip(*np.nonzero(np.triu(close, 1)), strict=True):
            self.vehicles[i].handle_collisions(self.vehicles[j], dt)


class EgoCar(Vehicle):
    """highway-env's kinematic car without reverse and with a top speed (CARLA's ego never reverses)."""

    MAX_SPEED, MIN_SPEED = EGO_MAX_SPEED, 0.0

    def step(self, dt: float) -> None:
        super().step(dt)
        self.speed = float(np.clip(self.speed, 0.0, EGO_MAX_SPEED))


def _lane_y(lane: int) -> float:
    return lane * LANE_WIDTH


RAIL_Y = (_lane_y(0) - LANE_WIDTH / 2 - SHOULDER, _lane_y(LANES - 1) + LANE_WIDTH / 2 + SHOULDER)


def _road_texture() -> np.ndarray:
    """One 12 m stretch of asphalt, shoulder to shoulder: dashed lane lines (3 m of 12), solid edge lines."""
    rows, cols = 256, 96  # rows across the road (17 m), columns along it (12 m)
    half = LANES * LANE_WIDTH / 2 + SHOULDER
    y = (np.arange(rows) + 0.5) / rows * 2 * half - half  # metres from the road's centre line
    x = (np.arange(cols) + 0.5) / cols * 12.0
    rng = np.random.default_rng(0)
    shade = 0.34 + 0.015 * rng.standard_normal((rows, cols))
    shade[np.abs(y) > LANES * LANE_WIDTH / 2] += 0.05
    image = np.repeat(shade[..., None], 3, -1) * np.array([1.0, 1.0, 1.04])
    edge = np.abs(np.abs(y) - LANES * LANE_WIDTH / 2) < 0.08
    image[edge] = 0.92
    dash = np.zeros((rows, cols), bool)
    for k in range(1, LANES):
        dash |= (np.abs(y - (k * LANE_WIDTH - LANES * LANE_WIDTH / 2)) < 0.075)[:, None] & (x < 3.0)[None, :]
    image[dash] = 0.92
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _grass_texture() -> np.ndarray:
    rng = np.random.default_rng(1)
    base = np.array([0.27, 0.42, 0.18]) * (1 + 0.12 * rng.standard_normal((64, 64, 1)))
    return (np.clip(base, 0, 1) * 255).astype(np.uint8)


def _rgb(values: tuple) -> str:
    return " ".join(f"{v:.4f}" for v in values)


def _car_xml(i: int) -> str:
    g = f'group="{VISIBLE}" contype="0" conaffinity="0"'
    return f"""
    <body name="car{i}" mocap="true" pos="0 0 -100">
      <geom name="car{i}_paint" type="box" size="2.45 0.95 0.34" pos="0 0 0.72" material="paint" {g}/>
      <geom type="box" size="1.25 0.84 0.26" pos="-0.3 0 1.31" material="glass" {g}/>
      <geom type="box" size="0.37 1.0 0.36" pos="1.55 0 0.36" material="tyre" {g}/>
      <geom type="box" size="0.37 1.0 0.36" pos="-1.55 0 0.36" material="tyre" {g}/>
      <geom type="box" size="0.03 0.82 0.07" pos="-2.46 0 0.88" material="taillight" {g}/>
      <geom type="box" size="0.03 0.78 0.06" pos="2.46 0 0.8" material="headlight" {g}/>
    </body>"""


def _trees_xml() -> str:
    """Poplars along both sides, irregular within each 48 m so the repetition is not obvious."""
    parts = []
    offsets = {1: (0.0, 17.0, 31.0), -1: (6.0, 22.0, 40.0)}
    for side, ys in ((1, RAIL_Y[0] - 6.0), (-1, RAIL_Y[1] + 6.0)):
        for start in np.arange(-STRIP_PERIOD, CULL_AHEAD, STRIP_PERIOD):
            for k, dx in enumerate(offsets[side]):
                size = 3.2 + 0.8 * ((k + int(start)) % 3)
                parts.append(f'<geom type="ellipsoid" size="{size / 2:.2f} {size / 2:.2f} {size:.2f}" '
                             f'pos="{start + dx:.1f} {-ys - side * 2.0 * k:.1f} {size:.2f}" material="leaves" '
                             'contype="0" conaffinity="0"/>')
    return "\n      ".join(parts)


def build_scene(look: Look, vehicles: int) -> mujoco.MjModel:
    """The MuJoCo scene: a road strip that follows the ego, ``vehicles`` cars, and the ego's camera and lights.

    Everything moves as mocap bodies; the sky, haze and sun at build time come from ``look`` (sky and haze
    are baked into the GL context, so per-episode weather changes only fog, light, road and corruptions).
    """
    road_half = LANES * LANE_WIDTH / 2 + SHOULDER
    road_y = -(RAIL_Y[0] + RAIL_Y[1]) / 2  # MuJoCo's y is highway-env's -y (z up, right-handed)
    strip_half = (CULL_AHEAD + 3 * STRIP_PERIOD) / 2
    strip_mid = strip_half - 2 * STRIP_PERIOD
    xml = f"""
<mujoco model="highway">
  <statistic extent="1" center="0 0 0"/>
  <visual>
    <global offwidth="{SUPERSAMPLE * max(SIZES)}" offheight="{SUPERSAMPLE * max(SIZES)}" fovy="{CAMERA_FOVY}"/>
    <quality shadowsize="0" offsamples="0"/>
    <map znear="0.1" zfar="2500" fogstart="{look.fog_start:.1f}" fogend="{look.fog_end:.1f}" haze="{look.haze:.3f}"/>
    <rgba fog="{_rgb(look.fog_rgb)} 1" haze="{_rgb(look.fog_rgb)} 1"/>
    <headlight active="0" ambient="0 0 0" diffuse="0 0 0" specular="0 0 0"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="{_rgb(look.sky_top)}" rgb2="{_rgb(look.sky_horizon)}"
             width="32" height="32"/>
    <material name="road" texture="road" texrepeat="{2 * strip_half / 12:.0f} 1" specular="0.05" shininess="0.3"/>
    <material name="grass" texture="grass" texuniform="true" texrepeat="0.125 0.125" specular="0"/>
    <material name="rail" rgba="0.62 0.63 0.66 1" specular="0.4" shininess="0.5"/>
    <material name="leaves" rgba="0.12 0.3 0.1 1" specular="0"/>
    <material name="paint" specular="0.5" shininess="0.6"/>
    <material name="glass" rgba="0.06 0.07 0.09 1" specular="0.8" shininess="0.9"/>
    <material name="tyre" rgba="0.03 0.03 0.03 1" specular="0"/>
    <material name="taillight" rgba="0.85 0.05 0.03 1"/>
    <material name="headlight" rgba="0.95 0.93 0.8 1"/>
  </asset>
  <worldbody>
    <light name="sun" directional="true" castshadow="false" dir="{_rgb(look.sun_dir)}"
           diffuse="{_rgb(look.sun_rgb)}" ambient="{_rgb(look.ambient_rgb)}" specular="0.2 0.2 0.2"/>
    <body name="strip" mocap="true">
      <geom type="plane" size="2500 2500 500" pos="0 0 -0.03" material="grass" contype="0" conaffinity="0"/>
      <geom type="plane" size="{strip_half:.0f} {road_half} 3" pos="{strip_mid:.0f} {road_y} 0" material="road"
            contype="0" conaffinity="0"/>
      <geom type="box" size="{strip_half:.0f} 0.06 0.17" pos="{strip_mid:.0f} {-RAIL_Y[0]} 0.6" material="rail"
            contype="0" conaffinity="0"/>
      <geom type="box" size="{strip_half:.0f} 0.06 0.17" pos="{strip_mid:.0f} {-RAIL_Y[1]} 0.6" material="rail"
            contype="0" conaffinity="0"/>
      {_trees_xml()}
    </body>
    <body name="ego" mocap="true">
      <camera name="front" pos="{_rgb(CAMERA_POS)}" xyaxes="0 -1 0 0 0 1" fovy="{CAMERA_FOVY}"/>
      <light name="headlight_left" pos="2.4 0.7 1.1" dir="1 0 -0.09" cutoff="28" exponent="4" castshadow="false"
             attenuation="1 0 0.001" diffuse="4 3.9 3.6" specular="0.3 0.3 0.3" active="false"/>
      <light name="headlight_right" pos="2.4 -0.7 1.1" dir="1 0 -0.09" cutoff="28" exponent="4"
             castshadow="false" attenuation="1 0 0.001" diffuse="4 3.9 3.6" specular="0.3 0.3 0.3"
             active="false"/>
    </body>
    {"".join(_car_xml(i) for i in range(vehicles))}
  </worldbody>
</mujoco>"""
    spec = mujoco.MjSpec.from_string(xml)
    for name, image in (("road", _road_texture()), ("grass", _grass_texture())):
        texture = spec.add_texture(name=name, type=mujoco.mjtTexture.mjTEXTURE_2D, width=image.shape[1],
                                   height=image.shape[0], nchannel=3)
        texture.data = image.tobytes()
    return spec.compile()


class _Camera:
    """Offscreen rendering of the ego's front camera with fog settable per episode (it lives in the context).

    Anti-aliased by rendering at twice the size and averaging 2x2 blocks, which in software OpenGL costs a
    third of MuJoCo's default 4x multisampling.
    """

    def __init__(self, model: mujoco.MjModel, size: int):
        self.size, self._full = size, SUPERSAMPLE * size
        self._gl = mujoco.GLContext(self._full, self._full)
        self._gl.make_current()
        self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
        self._scene = mujoco.MjvScene(model, maxgeom=model.ngeom + 10)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_FOG] = True
        self._scene.flags[mujoco.mjtRndFlag.mjRND_HAZE] = True
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = model.camera("front").id
        self._option = mujoco.MjvOption()
        self._option.geomgroup[HIDDEN] = False
        self._perturb = mujoco.MjvPerturb()
        self._rect = mujoco.MjrRect(0, 0, self._full, self._full)

    def set_fog(self, start: float, end: float, rgb: tuple) -> None:
        self._context.fogStart, self._context.fogEnd = start, end
        self._context.fogRGBA[:] = (*rgb, 1.0)

    def render(self, model: mujoco.MjModel, data: mujoco.MjData, segmentation: bool = False) -> np.ndarray:
        """RGB uint8 (size, size, 3), or with ``segmentation`` the geom id per pixel (-1: sky)."""
        self._gl.make_current()
        mujoco.mjv_updateScene(model, data, self._option, self._perturb, self._camera,
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = segmentation
        self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = segmentation
        mujoco.mjr_render(self._rect, self._scene, self._context)
        rgb = np.empty((self._full, self._full, 3), np.uint8)
        mujoco.mjr_readPixels(rgb, None, self._rect, self._context)
        rgb = np.flipud(rgb)
        if not segmentation:
            return cv2.resize(rgb, (self.size, self.size), interpolation=cv2.INTER_AREA)
        rgb = rgb[::SUPERSAMPLE, ::SUPERSAMPLE]  # one sample per pixel: ids must not be averaged
        segid = rgb.astype(np.int64) @ np.array([1, 1 << 8, 1 << 16])  # MuJoCo's id colour: segid + 1
        geom_of_segid = np.full(self._scene.ngeom + 1, -1, np.int64)
        for geom in self._scene.geoms[: self._scene.ngeom]:
            if geom.segid >= 0 and geom.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                geom_of_segid[geom.segid + 1] = geom.objid
        return geom_of_segid[segid]

    def close(self) -> None:
        self._gl.make_current()
        self._context.free()
        self._gl.free()


def _corruptions(look: Look, size: int) -> A.Compose:
    """Rain streaks (slanted by wind) and sensor noise, drawn on the rendered frame; empty when clear."""
    steps = []
    if look.rain_drops:
        length = max(2, size // 10)
        slant = look.rain_slant * length
        grey = int(110 * look.rain_brightness)
        steps.append(A.RandomRain(slant_range=(min(slant * 0.8, 45.0), min(slant * 1.2, 45.0)), drop_length=length,
                                  drop_width=1, drop_color=(grey, grey, grey), blur_value=max(1, size // 64),
                                  brightness_coefficient=1.0, rain_type=look.rain_drops, p=1.0))
    if look.noise_std >= 0.005:
        steps.append(A.GaussNoise(std_range=(look.noise_std, look.noise_std), p=1.0))
    return A.Compose(steps)


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

        self.model = build_scene(weather_look(self.weather), vehicles)
        self.data = mujoco.MjData(self.model)
        self._camera = _Camera(self.model, size)
        self._strip = self.model.body("strip").mocapid[0]
        self._ego_mocap = self.model.body("ego").mocapid[0]
        self._car_mocap = np.array([self.model.body(f"car{i}").mocapid[0] for i in range(vehicles)], int)
        per_car = int(self.model.body_geomnum[self.model.body("car0").id]) if vehicles else 0
        self._car_geoms = np.array([self.model.body(f"car{i}").geomadr[0] + np.arange(per_car)
                                    for i in range(vehicles)], int).reshape(vehicles, per_car)
        self._paint_geoms = np.array([self.model.geom(f"car{i}_paint").id for i in range(vehicles)], int)
        self._vehicle_of_geom = np.full(self.model.ngeom, -1, np.int64)
        for i, geoms in enumerate(self._car_geoms):
            self._vehicle_of_geom[geoms] = i
        self._sun = self.model.light("sun").id
        self._headlights = [self.model.light(n).id for n in ("headlight_left", "headlight_right")]
        self._road_mat = self.model.material("road").id
        self._lights_mat = (self.model.material("taillight").id, self.model.material("headlight").id)

        lanes = RoadNetwork()
        for lane in range(LANES):
            lines = (LineType.CONTINUOUS_LINE if lane == 0 else LineType.STRIPED,
                     LineType.CONTINUOUS_LINE if lane == LANES - 1 else LineType.NONE)
            lanes.add_lane("a", "b", StraightLane([0.0, _lane_y(lane)], [ROAD_LENGTH, _lane_y(lane)],
                                                  width=LANE_WIDTH, line_types=lines, speed_limit=SPEED_LIMIT))
        self._network = lanes
        self.road: Road | None = None
        self.ego: EgoCar | None = None
        self.traffic: list[IDMVehicle] = []
        self.episode_weather = self.weather
        self._look = weather_look(self.weather)
        self._corrupt = _corruptions(self._look, size)
        self._frames, self._image = 0, None
        self._first_seed = seed  # used by the first reset() that names no seed

    # ----------------------------------------------------------------------------------------------- episode
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed, self._first_seed = (self._first_seed if seed is None else seed), None
        super().reset(seed=seed)
        scene_seed, weather_seed, image_seed = np.random.SeedSequence(
            int(self.np_random.integers(2**63))).generate_state(3)
        self._spawn(np.random.default_rng(scene_seed))
        self.episode_weather = self.weather.jittered(self._jitter, np.random.default_rng(weather_seed))
        self._look = weather_look(self.episode_weather)
        self._apply_look(self._look)
        self._corrupt = _corruptions(self._look, self.size)
        self._corrupt.set_random_seed(int(image_seed))
        self._frames = 0
        return self._observation(), self._info(0.0, 0.0, 0.0, "")

    def _spawn(self, rng: np.random.Generator) -> None:
        """The ego at START_X in a random lane; 8 vehicles within +-40 m of it, the rest along the road."""
        self.road = StraightRoad(self._network, np_random=np.random.RandomState(int(rng.integers(2**31))))
        ego_lane = int(rng.integers(LANES))
        self.ego = EgoCar(self.road, [START_X, _lane_y(ego_lane)], heading=0.0, speed=0.0)
        self.road.vehicles.append(self.ego)
        occupied = [(ego_lane, START_X)]
        self.traffic = []
        for k in range(self.vehicles):
            low, high = (-NEARBY_RANGE, NEARBY_RANGE) if k < NEARBY else TRAFFIC_RANGE
            for _ in range(1000):
                lane, x = int(rng.integers(LANES)), START_X + rng.uniform(low, high)
                if all(abs(x - ox) >= MIN_GAP for ol, ox in occupied if ol == lane):
                    break
            else:
                raise RuntimeError(f"no free place for vehicle {k} between {low} and {high} m of the start")
            occupied.append((lane, x))
            car = IDMVehicle(self.road, [x, _lane_y(lane)], heading=0.0, speed=0.0,
                             target_speed=float(rng.uniform(*TRAFFIC_SPEEDS)))
            car.randomize_behavior()
            self.road.vehicles.append(car)
            self.traffic.append(car)
        paints = np.array(CAR_PAINTS)[rng.integers(len(CAR_PAINTS), size=self.vehicles)]
        self.model.geom_rgba[self._paint_geoms, :3] = paints

    def _apply_look(self, look: Look) -> None:
        m = self.model
        m.light_dir[self._sun], m.light_diffuse[self._sun] = look.sun_dir, look.sun_rgb
        m.light_ambient[self._sun] = look.ambient_rgb
        m.light_active[self._headlights] = look.headlights
        m.mat_rgba[self._road_mat, :3] = look.road_shade
        m.mat_specular[self._road_mat] = look.road_specular
        m.mat_emission[list(self._lights_mat)] = look.tail_emission, look.head_emission
        self._camera.set_fog(look.fog_start, look.fog_end, look.fog_rgb)

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
    def _sync_scene(self) -> None:
        """Move the MuJoCo bodies to highway-env's state (MuJoCo y = -highway-env y) and cull unseen cars.

        The road strip lies ahead of the camera; an ego turned round gets it turned round too (about the
        road's centre line, which leaves road and rails in place).
        """
        ego_x, heading = self.ego.position[0], self.ego.heading
        snap = math.floor(ego_x / STRIP_PERIOD) * STRIP_PERIOD
        if math.cos(heading) >= 0:
            self.data.mocap_pos[self._strip], self.data.mocap_quat[self._strip] = (snap, 0, 0), (1, 0, 0, 0)
        else:
            self.data.mocap_pos[self._strip] = (snap + STRIP_PERIOD, -(RAIL_Y[0] + RAIL_Y[1]), 0)
            self.data.mocap_quat[self._strip] = (0, 0, 0, 1)
        for mocap, vehicle in ((self._ego_mocap, self.ego), *zip(self._car_mocap, self.traffic, strict=True)):
            self.data.mocap_pos[mocap] = (vehicle.position[0], -vehicle.position[1], 0.0)
            self.data.mocap_quat[mocap] = (math.cos(vehicle.heading / 2), 0.0, 0.0, -math.sin(vehicle.heading / 2))
        if self.traffic:
            ahead = (np.array([v.position for v in self.traffic]) - self.ego.position) @ self.ego.direction
            seen = (ahead > CULL_BEHIND) & (ahead < min(CULL_AHEAD, self._look.fog_end + 10.0))
            self.model.geom_group[self._car_geoms] = np.where(seen[:, None], VISIBLE, HIDDEN)
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)

    def _observation(self) -> dict[str, np.ndarray]:
        self._sync_scene()
        image = self._camera.render(self.model, self.data)
        self._image = self._corrupt(image=image)["image"]
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
        self._sync_scene()
        geoms = self._camera.render(self.model, self.data, segmentation=True)
        return np.where(geoms >= 0, self._vehicle_of_geom[np.maximum(geoms, 0)], -1)

    def close(self) -> None:
        if self._camera is not None:
            self._camera.close()
            self._camera = None
