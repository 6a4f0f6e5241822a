"""LaProp with adaptive gradient clipping and linear warm-up: DreamerV3's single optimiser."""

from __future__ import annotations

import torch


def agc_factor(grad_norm: torch.Tensor, param_norm: torch.Tensor, clip: float, min_norm: float = 1e-3,
               ) -> torch.Tensor:
    """Scale that keeps ``|grad| <= clip * max(|param|, min_norm)`` (adaptive gradient clipping)."""
    limit = clip * torch.clamp(param_norm, min=min_norm)
    return torch.clamp(limit / torch.clamp(grad_norm, min=1e-12), max=1.0)


def warmup_lr(lr: float, step: int, warmup: int) -> float:
    """Linear warm-up from 0 to ``lr`` over ``warmup`` updates."""
    return lr if warmup <= 0 else lr * min(1.0, step / warmup)


class LaProp(torch.optim.Optimizer):
    """LaProp (Ziyin et al. 2020): momentum over RMS-normalised gradients, with AGC before it.

    update = m_hat, m = b1 m + (1 - b1) g / (sqrt(v_hat) + eps), v = b2 v + (1 - b2) g^2.
    Each group's ``lr`` is its peak rate; the warm-up scales it by ``min(1, step / warmup)``.
    """

    def __init__(self, params, lr: float = 4e-5, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-20,
                 agc: float = 0.3, warmup: int = 1000):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, agc=agc, warmup=warmup))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.float()
                if group["agc"] > 0:
                    grad = grad * agc_factor(grad.norm(), p.detach().float().norm(), group["agc"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, dtype=torch.float32)
                    state["v"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                t = state["step"]
                state["v"].mul_(b2).addcmul_(grad, grad, value=1 - b2)
                denom = (state["v"] / (1 - b2**t)).sqrt_().add_(group["eps"])  # in place: one temporary
                state["m"].mul_(b1).addcdiv_(grad, denom, value=1 - b1)
                step_size = warmup_lr(group["lr"], t, group["warmup"]) / (1 - b1**t)
                p.add_(state["m"].to(p.dtype), alpha=-step_size)
