"""Lambda-returns and DreamerV3's percentile return normalisation."""

from __future__ import annotations

import torch
from torch import nn


def lambda_returns(
    rewards: torch.Tensor,
    continues: torch.Tensor,
    bootstrap: torch.Tensor,
    discount: float,
    lam: float,
    is_last: torch.Tensor | None = None,
) -> torch.Tensor:
    """TD(lambda) returns along axis 1, as DreamerV3 computes them.

    All inputs are ``[batch, time]``; ``rewards[:, t]`` is the reward on arriving at step t and
    ``continues[:, t]`` is 1 - terminal at step t. ``bootstrap`` is the value estimate used where the
    lambda-chain is cut: at the last step and at an ``is_last`` step. Returns
    ``[batch, time - 1]``:

        R_t = r_{t+1} + discount * c_{t+1} * ((1 - lambda') * boot_{t+1} + lambda' * R_{t+1}),
        lambda' = lambda * (1 - last_{t+1}),  R_{T-1} = boot_{T-1}.
    """
    is_last = torch.zeros_like(rewards) if is_last is None else is_last.float()
    live = continues[:, 1:] * discount
    chain = (1.0 - is_last[:, 1:]) * lam
    interm = rewards[:, 1:] + (1.0 - chain) * live * bootstrap[:, 1:]
    returns = [bootstrap[:, -1]]
    for t in reversed(range(live.shape[1])):
        returns.append(interm[:, t] + live[:, t] * chain[:, t] * returns[-1])
    return torch.stack(list(reversed(returns))[:-1], 1)


def percentile_range(values: torch.Tensor, low: float = 5.0, high: float = 95.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``low`` and ``high`` percentiles of all entries of ``values``."""
    flat = values.detach().float().reshape(-1)
    quantiles = torch.quantile(flat, torch.tensor([low / 100.0, high / 100.0], device=flat.device))
    return quantiles[0], quantiles[1]


class PercentileNormalizer(nn.Module):
    """Tracks EMAs of the 5th and 95th return percentiles; scale = max(limit, high - low).

    Advantages are divided by the scale so large returns are scaled down and small ones are not
    scaled up (DreamerV3's return normalisation).
    """

    def __init__(self, rate: float = 0.01, limit: float = 1.0, low: float = 5.0, high: float = 95.0):
        super().__init__()
        self.rate, self.limit, self.low_pct, self.high_pct = rate, limit, low, high
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    @torch.no_grad()
    def update(self, values: torch.Tensor) -> None:
        low, high = percentile_range(values, self.low_pct, self.high_pct)
        self.low.mul_(1 - self.rate).add_(self.rate * low)
        self.high.mul_(1 - self.rate).add_(self.rate * high)

    def scale(self) -> torch.Tensor:
        return torch.clamp(self.high - self.low, min=self.limit)
