import matplotlib.image
import numpy as np

from pvm_mbrl.analysis.figures import plot_bars


def bars_image(tmp_path, name: str, error: float) -> np.ndarray:
    return matplotlib.image.imread(plot_bars({"id": {"cnn": (0.5, error)}}, "return", tmp_path / f"{name}.png"))


def test_bars_draw_an_error_bar_only_where_the_error_is_known(tmp_path):
    unknown, zero, spread = (bars_image(tmp_path, name, error)
                             for name, error in [("nan", float("nan")), ("zero", 0.0), ("spread", 0.1)])
    assert unknown.shape == zero.shape == spread.shape
    # a zero error still draws its caps (a known "no spread"); a single seed's NaN draws nothing
    assert not np.array_equal(unknown, zero)
    assert not np.array_equal(zero, spread)
    dark = [int(np.count_nonzero(image[..., :3].max(axis=-1) < 0.2)) for image in (unknown, zero, spread)]
    assert dark[0] < dark[1] < dark[2], dark
