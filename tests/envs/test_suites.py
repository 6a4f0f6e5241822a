"""The shared shift-suite mechanism: suite files, normalisation constants, measurement, preview and CLI."""

import shutil

import numpy as np
import pytest
import yaml

from pvm_mbrl.cli import main
from pvm_mbrl.envs import suites as suites_module
from pvm_mbrl.envs.suites import Suite, load_suite, load_suites, random_policy_returns, suite_families

RLVIGEN_WEATHERS = {  # RL-ViGen's custom_* weather dictionaries (cloudiness, precipitation, fog, sun altitude)
    "weak_high_light": (20, 0, 20, 10),
    "weak_noisy_low_light": (80, 50, 30, 20),
    "strong_low_light": (100, 0, 100, -90),
    "strong_noisy_low_light": (100, 100, 100, -90),
}


def test_driving_suites_are_rlvigens_weathers():
    suite_set = load_suites("driving")
    assert "driving" in suite_families() and suite_set.default == "id"
    assert list(suite_set.suites) == ["id", *RLVIGEN_WEATHERS]
    assert suite_set.members("weak") == ["weak_high_light", "weak_noisy_low_light"]
    assert suite_set.members("strong") == ["strong_low_light", "strong_noisy_low_light"]
    for name, (cloud, rain, fog, sun) in RLVIGEN_WEATHERS.items():
        weather = suite_set.get(name).params["weather"]
        assert (weather["cloudiness"], weather["precipitation"], weather["fog_density"],
                weather["sun_altitude_angle"]) == (cloud, rain, fog, sun)
    clear = suite_set.get("id").params["weather"]
    assert clear["fog_density"] == clear["precipitation"] == 0 and clear["sun_altitude_angle"] >= 30
    assert suite_set.get("strong_noisy_low_light").params["weather"]["wind_intensity"] == 100


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match=r"unknown driving suite 'fog'.*strong_low_light"):
        load_suite("driving", "fog")
    with pytest.raises(ValueError, match=r"'strong' is a group"):
        load_suite("driving", "strong")
    with pytest.raises(ValueError, match=r"env family 'atari' has no shift suites; families with suites: dmc, driv"):
        load_suites("atari")


def test_normalised_return_is_the_papers_equation():
    suite = Suite("driving", "x", "", {}, max_return=1000.0, random_return=-200.0)
    assert suite.normalise(-200.0) == 0.0 and suite.normalise(1000.0) == 1.0
    assert suite.normalise(400.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no measured random return"):
        Suite("driving", "x", "", {}, max_return=1.0).normalise(0.5)


def test_group_score_averages_its_suites(tmp_path, monkeypatch):
    shutil.copy(load_suites("driving").path, tmp_path / "driving.yaml")
    monkeypatch.setattr(suites_module, "SUITES_DIR", tmp_path)
    suites_module.write_random_returns("driving", {"strong_low_light": (0.0, 1.0),
                                                   "strong_noisy_low_light": (100.0, 1.0)}, episodes=3)
    suite_set = load_suites("driving")
    high, noisy = (suite_set.get(n) for n in suite_set.members("strong"))
    expected = (high.normalise(300.0) + noisy.normalise(300.0)) / 2
    assert suite_set.normalised_score("strong", {"strong_low_light": 300.0,
                                                 "strong_noisy_low_light": 300.0}) == pytest.approx(expected)
    with pytest.raises(ValueError, match="needs mean returns for strong_noisy_low_light"):
        suite_set.normalised_score("strong", {"strong_low_light": 1.0})


def test_measured_random_returns_are_written_back_into_the_data(tmp_path, monkeypatch):
    original = load_suites("driving").path
    shutil.copy(original, tmp_path / "driving.yaml")
    monkeypatch.setattr(suites_module, "SUITES_DIR", tmp_path)
    path = suites_module.write_random_returns("driving", {"id": (-12.3456, 4.0)}, episodes=5)
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


def test_preview_command_writes_one_frame_per_suite(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["envs", "preview", "driving", "--out", str(out), "--size", "64"]) == 0
    assert out.exists() and "wrote" in capsys.readouterr().out
    import matplotlib.image

    sheet = matplotlib.image.imread(out)
    assert sheet.shape[1] > 3 * sheet.shape[0]  # five frames side by side
    assert main(["envs", "preview", "atari"]) == 2
    assert "no shift suites" in capsys.readouterr().err


def test_normalise_command_measures_every_suite_into_the_file(tmp_path, monkeypatch, capsys):
    shutil.copy(load_suites("driving").path, tmp_path / "driving.yaml")
    monkeypatch.setattr(suites_module, "SUITES_DIR", tmp_path)
    assert main(["envs", "normalise", "driving", "--episodes", "1", "--seed", "3"]) == 0
    assert "stored in" in capsys.readouterr().out
    measured = load_suites("driving").suites.values()
    assert {s.random_episodes for s in measured} == {1}
    assert len({s.random_return for s in measured}) == 1 and next(iter(measured)).random_return < 0
