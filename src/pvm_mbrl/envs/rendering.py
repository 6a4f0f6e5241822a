"""Choosing and checking MuJoCo's offscreen OpenGL backend (EGL, falling back to OSMesa)."""

from __future__ import annotations

import os

import numpy as np


def configure_mujoco_gl() -> str:
    """Pick EGL unless the user chose a backend; must run before mujoco / dm_control are imported.

    EGL uses the GPU driver where there is one and Mesa's software rasteriser otherwise.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    return os.environ["MUJOCO_GL"]


def check_offscreen_rendering(size: int = 32) -> str:
    """Render a lit box offscreen; raise with what is missing if the image is blank or GL fails."""
    backend = configure_mujoco_gl()
    try:
        import mujoco

        model = mujoco.MjModel.from_xml_string(
            "<mujoco><worldbody><light pos='0 0 3'/><geom type='box' size='.3 .3 .3' rgba='1 0 0 1'/>"
            "<camera name='c' pos='0 -2 0' xyaxes='1 0 0 0 0 1'/></worldbody></mujoco>"
        )
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)  # poses are zero until the first forward pass
        with mujoco.Renderer(model, size, size) as renderer:
            renderer.update_scene(data, camera="c")
            image = renderer.render()
    except Exception as error:  # noqa: BLE001 - any GL failure gets the same advice
        raise RuntimeError(
            f"MuJoCo cannot render offscreen with MUJOCO_GL={backend}: {error}. Install the system GL "
            "libraries (bash scripts/setup.sh installs libegl1, libgl1, libegl-mesa0 and libosmesa6), or set "
            "MUJOCO_GL=osmesa."
        ) from error
    if not np.any(image):
        raise RuntimeError(f"MuJoCo rendered a blank image with MUJOCO_GL={backend}; the GL driver is broken.")
    return f"MUJOCO_GL={backend}, {size}x{size} image rendered"
