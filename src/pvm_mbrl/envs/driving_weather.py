"""The driving env's weather: RL-ViGen's CARLA ``WeatherParameters``, what they mean to the renderer (a
:class:`Look`: sun, sky, fog, road wetness, headlights) and the rain and sensor noise drawn on the rendered
image. Pure numbers and image operations; the MuJoCo scene (``driving_scene``) applies a look."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import albumentations as A
import numpy as np


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


def corruptions(look: Look, size: int) -> A.Compose:
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

