"""Where the package's own data files are: imports nothing from the package, so every layer may use it."""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent / "conf"
"""The config presets (``conf/config.yaml`` and the ``model``, ``env``, ``encoder``, ``study`` groups)."""
