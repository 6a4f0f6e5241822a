"""LaProp with adaptive gradient clipping and linear warm-up: DreamerV3's single optimiser."""

from __future__ import annotations

import torch


def agc_factor(grad_norm: torch.Tensor, param_norm: torch.Tensor, clip: float, min_norm: float = 1e-3,
               ) -> torch.Tensor:
    """Scale that keeps ``|grad| <= clip * max(|param|, min_norm)`` (adaptive gradient clipping)."""
    limit = clip * torch.clamp(param_norm, min=min_norm)
    return torch.clamp(limit / torch.clamp(grad_norm, min=1e-12), max=1.0)


def gradients_finite(params) -> torch.Tensor:
    """A device-side boolean: whether every gradient of ``params`` is finite (read it with the update's other
    numbers, in one transfer). A max-abs norm is inf or NaN exactly when some entry is."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(True)
    return torch.isfinite(torch.stack(torch._foreach_norm(grads, ord=float("inf")))).all()


def warmup_lr(lr: float, done: int, warmup: int) -> float:
    """Linear warm-up from 0 to ``lr`` over ``warmup`` updates, ``done`` of which came before this one.

    As optax's ``linear_schedule(0, lr, warmup)`` that DreamerV3 uses: it reads the count before the update, so
    the first update has rate 0 (its moments still accumulate).
    """
    return lr if warmup <= 0 else lr * min(1.0, done / warmup)


class LaProp(torch.optim.Optimizer):
    """LaProp (Ziyin et al. 2020): momentum over RMS-normalised gradients, with AGC before it.

    update = m_hat, m = b1 m + (1 - b1) g / (sqrt(v_hat) + eps), v = b2 v + (1 - b2) g^2.
    Each group's ``lr`` is its peak rate; the warm-up scales it by ``min(1, (step - 1) / warmup)``.
    """

    def __init__(self, params, lr: float = 4e-5, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-20,
                 agc: float = 0.3, warmup: int = 1000):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, agc=agc, warmup=warmup))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            # Parameters that missed an update (no gradient then) have their own step count: step each cohort.
            cohorts: dict[int, list[torch.Tensor]] = {}
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p, dtype=torch.float32)
                    state["v"] = torch.zeros_like(p, dtype=torch.float32)
                state["step"] += 1
                cohorts.setdefault(state["step"], []).append(p)
            for t, cohort in cohorts.items():
                self._step_cohort(group, cohort, t)

    def _step_cohort(self, group: dict, params: list[torch.Tensor], t: int) -> None:
        """One LaProp step for parameters at the same step count, with multi-tensor (``_foreach``) kernels."""
        b1, b2 = group["betas"]
        grads = [p.grad.float() for p in params]
        if group["agc"] > 0:
            factors = agc_factor(torch.stack(torch._foreach_norm(grads)),
                                 torch.stack(torch._foreach_norm([p.float() for p in params])), group["agc"])
            grads = torch._foreach_mul(grads, list(factors.unbind()))
        ms = [self.state[p]["m"] for p in params]
        vs = [self.state[p]["v"] for p in params]
        torch._foreach_mul_(vs, b2)
        torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
        denom = torch._foreach_div(vs, 1 - b2**t)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_mul_(ms, b1)
        torch._foreach_addcdiv_(ms, grads, denom, value=1 - b1)
        step_size = warmup_lr(group["lr"], t - 1, group["warmup"]) / (1 - b1**t)
        torch._foreach_add_(params, [m.to(p.dtype) for m, p in zip(ms, params, strict=True)], alpha=-step_size)
