"""The driving env's MuJoCo scene: a road strip with rails and trees that follows the ego, the traffic as mocap
cars, the ego's front camera and headlights, and the weather's light, fog and road wetness set per episode.
Rendered offscreen (anti-aliased by supersampling); segmentation gives which vehicle each pixel shows."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from highway_env.vehicle.kinematics import Vehicle

from pvm_mbrl.envs.driving_traffic import LANE_WIDTH, LANES, RAIL_Y, SHOULDER
from pvm_mbrl.envs.driving_weather import Look
from pvm_mbrl.envs.rendering import configure_mujoco_gl

configure_mujoco_gl()

import mujoco  # noqa: E402  (needs MUJOCO_GL set first)

SIZES = (64, 128, 224)  # camera image sizes (the offscreen buffer fits the largest)
CAMERA_POS, CAMERA_FOVY = (1.6, 0.0, 1.7), 60.0  # RL-ViGen's 'foresight0' camera, fov 60
CULL_BEHIND, CULL_AHEAD = -8.0, 400.0  # vehicles outside this span along the ego's heading cannot be seen
STRIP_PERIOD = 48.0  # the roadside repeats every 48 m, so the road strip follows the ego in 48 m jumps
VISIBLE, HIDDEN = 1, 3  # geom groups of drawn and culled vehicles
SUPERSAMPLE = 2  # render at twice the size and average (anti-aliasing)
CAR_PAINTS = ((0.9, 0.9, 0.88), (0.08, 0.08, 0.09), (0.62, 0.63, 0.65), (0.35, 0.36, 0.38), (0.7, 0.06, 0.05),
              (0.1, 0.2, 0.55), (0.05, 0.1, 0.25), (0.2, 0.35, 0.25), (0.75, 0.68, 0.52), (0.85, 0.65, 0.1))


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

class HighwayScene:
    """The scene of ``vehicles`` cars with its camera: moved to highway-env's state, restyled per episode
    (weather look, car paint), rendered as an RGB image or as the vehicle seen at each pixel."""

    def __init__(self, look: Look, vehicles: int, size: int):
        self.vehicles = vehicles
        self.model = build_scene(look, vehicles)
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
        self._fog_end = look.fog_end

    def paint(self, rng: np.random.Generator) -> None:
        """Give each car a body colour drawn from CAR_PAINTS."""
        paints = np.array(CAR_PAINTS)[rng.integers(len(CAR_PAINTS), size=self.vehicles)]
        self.model.geom_rgba[self._paint_geoms, :3] = paints

    def apply_look(self, look: Look) -> None:
        """The weather's light, headlights, road wetness and fog (sky and haze stay as built)."""
        m = self.model
        m.light_dir[self._sun], m.light_diffuse[self._sun] = look.sun_dir, look.sun_rgb
        m.light_ambient[self._sun] = look.ambient_rgb
        m.light_active[self._headlights] = look.headlights
        m.mat_rgba[self._road_mat, :3] = look.road_shade
        m.mat_specular[self._road_mat] = look.road_specular
        m.mat_emission[list(self._lights_mat)] = look.tail_emission, look.head_emission
        self._camera.set_fog(look.fog_start, look.fog_end, look.fog_rgb)
        self._fog_end = look.fog_end

    def sync(self, ego: Vehicle, traffic: Sequence[Vehicle]) -> None:
        """Move the MuJoCo bodies to highway-env's state (MuJoCo y = -highway-env y) and cull unseen cars.

        The road strip lies ahead of the camera; an ego turned round gets it turned round too (about the
        road's centre line, which leaves road and rails in place).
        """
        ego_x, heading = ego.position[0], ego.heading
        snap = math.floor(ego_x / STRIP_PERIOD) * STRIP_PERIOD
        if math.cos(heading) >= 0:
            self.data.mocap_pos[self._strip], self.data.mocap_quat[self._strip] = (snap, 0, 0), (1, 0, 0, 0)
        else:
            self.data.mocap_pos[self._strip] = (snap + STRIP_PERIOD, -(RAIL_Y[0] + RAIL_Y[1]), 0)
            self.data.mocap_quat[self._strip] = (0, 0, 0, 1)
        for mocap, vehicle in ((self._ego_mocap, ego), *zip(self._car_mocap, traffic, strict=True)):
            self.data.mocap_pos[mocap] = (vehicle.position[0], -vehicle.position[1], 0.0)
            self.data.mocap_quat[mocap] = (math.cos(vehicle.heading / 2), 0.0, 0.0, -math.sin(vehicle.heading / 2))
        if traffic:
            ahead = (np.array([v.position for v in traffic]) - ego.position) @ ego.direction
            seen = (ahead > CULL_BEHIND) & (ahead < min(CULL_AHEAD, self._fog_end + 10.0))
            self.model.geom_group[self._car_geoms] = np.where(seen[:, None], VISIBLE, HIDDEN)
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)

    def render(self) -> np.ndarray:
        """The front camera's RGB image (uint8, size x size x 3), before the weather's image corruptions."""
        return self._camera.render(self.model, self.data)

    def vehicle_mask(self) -> np.ndarray:
        """Per pixel of the camera image: the index of the car seen (as in ``traffic``), or -1."""
        geoms = self._camera.render(self.model, self.data, segmentation=True)
        return np.where(geoms >= 0, self._vehicle_of_geom[np.maximum(geoms, 0)], -1)

    def close(self) -> None:
        self._camera.close()
