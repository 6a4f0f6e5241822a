"""Output distributions of DreamerV3's heads, each with the loss DreamerV3 trains it with."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from pvm_mbrl.dreamer.transforms import symexp_bins, symlog, two_hot, two_hot_mean


def unimix_logits(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """Mix a categorical with ``unimix`` of the uniform distribution; returns the mixed log-probs.

    Keeps every class probability >= unimix / classes, so KL terms and log-probs stay finite.
    """
    if not 0.0 <= unimix < 1.0:
        raise ValueError(f"unimix must be in [0, 1), got {unimix}")
    if unimix == 0:  # log_softmax, not log(softmax): a class with probability 0 in float gets a finite log-prob
        return F.log_softmax(logits.float(), -1)
    probs = (1.0 - unimix) * F.softmax(logits.float(), -1) + unimix / logits.shape[-1]
    return torch.log(probs)


def categorical_index(probs: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Class indices drawn from the categoricals ``probs [..., K]`` by inverting their CDFs at ``uniform [...]``
    (draws in [0, 1)): the number of classes whose cumulative probability lies below ``uniform`` x the row's sum.

    The same distribution as ``torch.multinomial`` (or the official code's Gumbel-max), from one uniform per row
    instead of one random number per class: on a CPU, ``multinomial`` spent ~15% of a ``cpu``-preset update
    drawing exponentials. A row with inf or NaN (a diverged model's) draws class 0 instead of raising; its NaN still
    reaches the sample through the straight-through term, so the update's losses show it.
    """
    cdf = probs.cumsum(-1)
    # Scaled by the row's own sum, the threshold never exceeds the last cumulative sum, so no index reaches K.
    return (cdf < uniform.unsqueeze(-1) * cdf[..., -1:]).sum(-1)


class OneHotCategorical:
    """Categorical over the last axis with straight-through one-hot samples."""

    def __init__(self, logits: torch.Tensor, unimix: float = 0.0):
        self.logits = unimix_logits(logits, unimix)  # normalised log-probs
        self.probs = self.logits.exp()

    def sample(self) -> torch.Tensor:
        uniform = torch.rand(self.probs.shape[:-1], device=self.probs.device, dtype=self.probs.dtype)
        hard = F.one_hot(categorical_index(self.probs.detach(), uniform), self.probs.shape[-1]).to(self.probs.dtype)
        return hard + (self.probs - self.probs.detach())  # straight-through: value hard, gradient of probs

    def mode(self) -> torch.Tensor:
        hard = F.one_hot(self.probs.argmax(-1), self.probs.shape[-1]).to(self.probs.dtype)
        return hard + (self.probs - self.probs.detach())

    def log_prob(self, onehot: torch.Tensor) -> torch.Tensor:
        return (onehot * self.logits).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.probs * self.logits).sum(-1)


def categorical_kl(lhs_logits: torch.Tensor, rhs_logits: torch.Tensor) -> torch.Tensor:
    """KL(lhs || rhs) for normalised log-probs, summed over the class axis."""
    return (lhs_logits.exp() * (lhs_logits - rhs_logits)).sum(-1)


def free_nats_kl(lhs_logits: torch.Tensor, rhs_logits: torch.Tensor, free_nats: float) -> torch.Tensor:
    """KL summed over latents and classes, clipped below at ``free_nats`` (no gradient under it)."""
    kl = categorical_kl(lhs_logits, rhs_logits).sum(-1)
    return torch.clamp(kl, min=free_nats)


class BoundedNormal:
    """DreamerV3's continuous policy: Normal(tanh(mean), std in [min_std, max_std]) per action dim."""

    def __init__(self, mean: torch.Tensor, raw_std: torch.Tensor, min_std: float = 0.1, max_std: float = 1.0):
        self.mean = torch.tanh(mean.float())
        self.std = (max_std - min_std) * torch.sigmoid(raw_std.float() + 2.0) + min_std

    def sample(self) -> torch.Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        z = (value - self.mean) / self.std
        return (-0.5 * z.pow(2) - self.std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + self.std.log()).sum(-1)


@functools.cache
def device_bins(num_bins: int, device: torch.device) -> torch.Tensor:
    """:func:`symexp_bins` built once per count and device (heads are called many times an update)."""
    return symexp_bins(num_bins, device=device)


class SymexpTwoHot:
    """Reward and value distribution: categorical over symexp-spaced bins, two-hot cross-entropy loss."""

    def __init__(self, logits: torch.Tensor, bins: torch.Tensor | None = None):
        self.logits = logits.float()
        self.bins = device_bins(logits.shape[-1], logits.device) if bins is None else bins.to(logits.device)

    def mean(self) -> torch.Tensor:
        return two_hot_mean(F.softmax(self.logits, -1), self.bins)

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the two-hot encoding of ``target`` (no gradient through the target)."""
        return -(two_hot(target.detach(), self.bins) * F.log_softmax(self.logits, -1)).sum(-1)


class Bernoulli:
    """Continue flag head: sigmoid probability, binary cross-entropy loss."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits.float()

    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    def loss(self, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.logits, target.float(), reduction="none")


def image_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error summed over the last three (image) axes, as DreamerV3's image decoder loss."""
    return (prediction.float() - target.float()).pow(2).sum((-3, -2, -1))


def symlog_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error in symlog space summed over the feature axis (vector decoder loss)."""
    return (prediction.float() - symlog(target.float())).pow(2).sum(-1)
