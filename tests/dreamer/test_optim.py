import pytest
import torch

from pvm_mbrl.dreamer.optim import LaProp, agc_factor, warmup_lr


def test_agc_factor_hand_values():
    assert agc_factor(torch.tensor(10.0), torch.tensor(1.0), 0.3).item() == pytest.approx(0.03)
    assert agc_factor(torch.tensor(0.1), torch.tensor(1.0), 0.3).item() == 1.0  # small gradients untouched
    assert agc_factor(torch.tensor(1.0), torch.tensor(0.0), 0.3).item() == pytest.approx(0.3e-3)


def test_warmup_is_linear():
    assert warmup_lr(1e-3, 0, 1000) == 0.0
    assert warmup_lr(1e-3, 250, 1000) == pytest.approx(2.5e-4)
    assert warmup_lr(1e-3, 5000, 1000) == 1e-3


def test_laprop_first_step_moves_by_lr_times_sign():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    optimiser = LaProp([param], lr=0.1, agc=0.0, warmup=0)
    param.grad = torch.tensor([0.5, -4.0, 0.0])
    optimiser.step()
    # bias-corrected: v_hat = g^2, m_hat = g / |g| -> step = lr * sign(g)
    assert torch.allclose(param.detach(), torch.tensor([0.9, -1.9, 3.0]))
