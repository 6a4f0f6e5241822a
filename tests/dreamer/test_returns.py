import pytest
import torch

from pvm_mbrl.dreamer.returns import PercentileNormalizer, lambda_returns, percentile_range

REWARDS = torch.tensor([[0.0, 1.0, 2.0]])
BOOT = torch.tensor([[0.0, 10.0, 20.0]])
ONES = torch.ones(1, 3)


@pytest.mark.parametrize("lam, expected", [
    (0.5, [6.5, 12.0]),  # R1 = 2 + .5(.5*20 + .5*20) = 12; R0 = 1 + .5(.5*10 + .5*12) = 6.5
    (1.0, [7.0, 12.0]),  # Monte Carlo with bootstrap at the end
    (0.0, [6.0, 12.0]),  # one-step TD
])
def test_lambda_returns_hand_values(lam, expected):
    returns = lambda_returns(REWARDS, ONES, BOOT, discount=0.5, lam=lam)
    assert torch.allclose(returns, torch.tensor([expected]))


def test_lambda_returns_terminal_and_last():
    terminal_at_1 = torch.tensor([[1.0, 0.0, 1.0]])
    returns = lambda_returns(REWARDS, terminal_at_1, BOOT, discount=0.5, lam=0.5)
    assert returns[0, 0].item() == pytest.approx(1.0)  # reward only: nothing after a terminal
    last_at_1 = torch.tensor([[0.0, 1.0, 0.0]])
    returns = lambda_returns(REWARDS, ONES, BOOT, discount=0.5, lam=0.5, is_last=last_at_1)
    assert returns[0, 0].item() == pytest.approx(1.0 + 0.5 * 10.0)  # chain cut: bootstrap at step 1


def test_percentile_normalizer_hand_values():
    values = torch.arange(101.0)
    low, high = percentile_range(values)
    assert (low.item(), high.item()) == (5.0, 95.0)
    fast = PercentileNormalizer(rate=1.0)
    fast.update(values)
    assert fast.scale().item() == pytest.approx(90.0)
    slow = PercentileNormalizer(rate=0.01, limit=1.0)
    slow.update(values)  # EMA from zero: low 0.05, high 0.95 -> range 0.9, below the limit of 1
    assert slow.low.item() == pytest.approx(0.05) and slow.high.item() == pytest.approx(0.95)
    assert slow.scale().item() == 1.0
