"""Pure value transforms used by DreamerV3: symlog/symexp and two-hot encoding."""

from __future__ import annotations

import torch


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(1 + |x|): compresses large magnitudes, identity-like near zero."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`symlog`."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def symexp_bins(num_bins: int = 255, limit: float = 20.0, device: torch.device | str | None = None) -> torch.Tensor:
    """DreamerV3's reward/value bins: evenly spaced in symlog space on [-limit, limit], in raw space.

    Built from one half and mirrored so the bins are exactly symmetric; an odd count puts one bin at
    exactly zero, which the zero-initialised heads predict at the start. Built on ``device``: inside a compiled
    update a tensor made on the CPU keeps inductor from using CUDA graphs.
    """
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    half = symexp(torch.linspace(-limit, limit, num_bins, device=device)[num_bins // 2:])
    if num_bins % 2:
        half[0] = 0.0
        return torch.cat([-half[1:].flip(0), half])
    return torch.cat([-half.flip(0), half])


def two_hot(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Encode each value of ``x`` as weights on its two neighbouring ``bins`` (sum 1, mean = x).

    Values outside the bin range are clipped to the end bins. Returns shape ``x.shape + (len(bins),)``.
    """
    bins = bins.to(x.device, torch.float32)
    x = x.float().clamp(bins[0], bins[-1])
    upper = torch.searchsorted(bins, x.contiguous(), right=False).clamp(1, len(bins) - 1)
    lower = upper - 1
    low_value, high_value = bins[lower], bins[upper]
    span = high_value - low_value
    weight_high = torch.where(span > 0, (x - low_value) / span, torch.zeros_like(x))
    weight_low = 1.0 - weight_high
    encoded = torch.zeros(*x.shape, len(bins), device=x.device)
    encoded.scatter_(-1, lower.unsqueeze(-1), weight_low.unsqueeze(-1))
    encoded.scatter_add_(-1, upper.unsqueeze(-1), weight_high.unsqueeze(-1))
    return encoded


def two_hot_mean(probs: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Expected value of a distribution over ``bins``; summed from both ends towards zero.

    With symexp bins the outer bins are ~1e8, so summing outside-in keeps tiny values exact
    (DreamerV3 does the same).
    """
    bins = bins.to(probs.device, probs.dtype)
    if len(bins) % 2 == 0:
        return (probs * bins).sum(-1)
    mid = len(bins) // 2
    below = (probs[..., :mid] * bins[:mid]).flip(-1)
    above = probs[..., mid + 1 :] * bins[mid + 1 :]
    return probs[..., mid] * bins[mid] + (below + above).sum(-1)
