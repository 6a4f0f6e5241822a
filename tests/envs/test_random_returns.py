"""Measuring the suites' random-policy returns and writing them into the suite files (``pvm-mbrl envs normalise``)."""

import shutil

import numpy as np
import yaml

from pvm_mbrl.cli import main
from pvm_mbrl.envs import suites as suites_module
from pvm_mbrl.envs.random_returns import random_policy_returns, write_random_returns
from pvm_mbrl.envs.suites import load_suite, load_suites


def test_measured_random_returns_are_written_back_into_the_data(tmp_path, monkeypatch):
    original = load_suites("driving").path
    shutil.copy(original, tmp_path / "driving.yaml")
    monkeypatch.setattr(suites_module, "SUITES_DIR", tmp_path)
    path = write_random_returns("driving", {"id": (-12.3456, 4.0)}, episodes=5)
    text = path.read_text()
    assert text.startswith("# Driving weather suites")  # the leading comments survive the rewrite
    suite = load_suite("driving", "id")
    assert (suite.random_return, suite.random_return_std, suite.random_episodes) == (-12.346, 4.0, 5)
    before, after = yaml.safe_load(original.read_text()), yaml.safe_load(text)
    after["suites"]["id"]["normalisation"] = before["suites"]["id"]["normalisation"]
    assert after == before  # nothing else changed


def test_random_policy_returns_ignore_the_weather():
    """The random policy never looks at the image, so the same seeds give the same returns in every suite."""
    clear = random_policy_returns("driving", "id", episodes=2, seed=3)  # seed 3: short episodes (stuck)
    night = random_policy_returns("driving", "strong_noisy_low_light", episodes=2, seed=3)
    assert clear == night and clear[0] != clear[1]
    assert all(np.isfinite(clear))


def test_normalise_command_measures_every_suite_into_the_file(tmp_path, monkeypatch, capsys):
    shutil.copy(load_suites("driving").path, tmp_path / "driving.yaml")
    monkeypatch.setattr(suites_module, "SUITES_DIR", tmp_path)
    assert main(["envs", "normalise", "driving", "--episodes", "1", "--seed", "3"]) == 0
    assert "stored in" in capsys.readouterr().out
    measured = load_suites("driving").suites.values()
    assert {s.random_episodes for s in measured} == {1}
    assert len({s.random_return for s in measured}) == 1 and next(iter(measured)).random_return < 0
