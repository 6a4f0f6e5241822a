import math

import pytest
import torch

from pvm_mbrl.dreamer.transforms import symexp, symexp_bins, symlog, two_hot, two_hot_mean


def test_symlog_hand_values():
    x = torch.tensor([0.0, math.e - 1, -(math.e**2 - 1), 1e6])
    expected = torch.tensor([0.0, 1.0, -2.0, math.log(1e6 + 1)])
    assert torch.allclose(symlog(x), expected, atol=1e-6)


def test_symexp_inverts_symlog():
    x = torch.tensor([-1e4, -3.0, -0.5, 0.0, 0.5, 3.0, 1e4])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5)
    assert torch.allclose(symexp(torch.tensor([1.0, -2.0])), torch.tensor([math.e - 1, -(math.e**2 - 1)]))


def test_two_hot_hand_values():
    bins = torch.tensor([-2.0, 0.0, 2.0])
    encoded = two_hot(torch.tensor([-1.0, 0.0, 0.5, 2.0, 7.0, -9.0]), bins)
    expected = torch.tensor([
        [0.5, 0.5, 0.0],  # halfway between -2 and 0
        [0.0, 1.0, 0.0],  # exactly on a bin
        [0.0, 0.75, 0.25],
        [0.0, 0.0, 1.0],
        [0.0, 0.0, 1.0],  # clipped above
        [1.0, 0.0, 0.0],  # clipped below
    ])
    assert torch.allclose(encoded, expected)


def test_two_hot_mean_decodes_encoding():
    bins = symexp_bins(255)
    values = torch.tensor([0.0, 0.3, -7.5, 123.0, -4567.0])
    assert torch.allclose(two_hot_mean(two_hot(values, bins), bins), values, rtol=1e-5, atol=1e-6)


def test_symexp_bins_are_symmetric_with_zero_centre():
    bins = symexp_bins(255)
    assert bins.shape == (255,) and bins[127] == 0.0
    assert torch.allclose(bins, -bins.flip(0))
    assert bins[-1] == pytest.approx(math.expm1(20.0), rel=1e-5)
