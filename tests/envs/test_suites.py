"""The shared shift-suite mechanism: suite files and the preview command (measurement: test_random_returns.py)."""

import pytest

from pvm_mbrl.cli import main
from pvm_mbrl.envs.suites import load_suite, load_suites, suite_families

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


def test_preview_command_writes_one_frame_per_suite(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["envs", "preview", "driving", "--out", str(out), "--size", "64"]) == 0
    assert out.exists() and "wrote" in capsys.readouterr().out
    import matplotlib.image

    sheet = matplotlib.image.imread(out)
    assert sheet.shape[1] > 3 * sheet.shape[0]  # five frames side by side
    assert main(["envs", "preview", "atari"]) == 2
    assert "no shift suites" in capsys.readouterr().err
