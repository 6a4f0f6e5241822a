"""Network building blocks: DreamerV3's initialisation, RMSNorm + SiLU layers, block-diagonal linear."""

from __future__ import annotations

import math

import torch
from torch import nn

NORM_EPS = 1e-4


def init_fan_in_(weight: torch.Tensor, fan_in: int, outscale: float = 1.0) -> None:
    """Truncated normal with std ``outscale / sqrt(fan_in)`` (DreamerV3's ``trunc_normal_in`` times its
    ``outscale``, which scales the standard deviation: the policy's 0.01 is a variance of 1e-4 / fan_in)."""
    if outscale == 0.0:
        nn.init.zeros_(weight)
        return
    std = outscale / math.sqrt(fan_in) / 0.87962566103423978  # std of a unit normal truncated at +-2
    nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


def linear(in_features: int, out_features: int, outscale: float = 1.0, bias: bool = True) -> nn.Linear:
    """DreamerV3's ``Linear``: fan-in truncated normal weights, zero bias (official layers all have one)."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    init_fan_in_(layer.weight, in_features, outscale)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class RMSNorm(nn.RMSNorm):
    """RMSNorm whose weight follows the input's dtype, so bf16 autocast keeps the fused kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.rms_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.eps)


class NormAct(nn.Sequential):
    """Linear -> RMSNorm -> SiLU, DreamerV3's hidden layer."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(
            linear(in_features, out_features),
            RMSNorm(out_features, eps=NORM_EPS),
            nn.SiLU(),
        )


class MLP(nn.Sequential):
    """``layers`` hidden NormAct layers of ``units``, optionally followed by a linear output."""

    def __init__(self, in_features: int, layers: int, units: int, out_features: int | None = None,
                 outscale: float = 1.0):
        modules: list[nn.Module] = []
        for i in range(layers):
            modules.append(NormAct(in_features if i == 0 else units, units))
        if out_features is not None:
            modules.append(linear(units if layers else in_features, out_features, outscale=outscale))
        super().__init__(*modules)


class BlockLinear(nn.Module):
    """Block-diagonal linear layer: ``blocks`` independent linear maps on equal slices of the input.

    Cuts the GRU's parameters and FLOPs by ``blocks`` while keeping a large recurrent state. Initialised as
    DreamerV3's: the fan-in is the whole input (``Initializer.compute_fans`` of a 3-D kernel), not one block's.
    """

    def __init__(self, in_features: int, out_features: int, blocks: int, bias: bool = True):
        super().__init__()
        if in_features % blocks or out_features % blocks:
            raise ValueError(f"features ({in_features}, {out_features}) must divide into {blocks} blocks")
        self.blocks = blocks
        self.weight = nn.Parameter(torch.empty(blocks, in_features // blocks, out_features // blocks))
        init_fan_in_(self.weight, in_features)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grouped = x.reshape(*x.shape[:-1], self.blocks, -1)
        out = torch.einsum("...gi,gio->...go", grouped, self.weight.to(x.dtype)).flatten(-2)
        return out if self.bias is None else out + self.bias.to(out.dtype)


class _ChannelNormSiLU(torch.autograd.Function):
    """``silu(x * rsqrt(mean_c(x²) + eps) * w)`` over the channel axis of NCHW, in float32, keeping only ``x`` and
    the per-pixel ``rsqrt`` for the backward (which recomputes the rest): the unfused norm and SiLU keep two or
    three full-size tensors (three in bf16, where the float32 copy of ``x`` is one of them)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        xf = x.float()
        rstd = torch.rsqrt(xf.pow(2).mean(1, keepdim=True) + eps)
        ctx.save_for_backward(x, weight, rstd)
        return nn.functional.silu(xf * rstd * weight[None, :, None, None]).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        x, weight, rstd = ctx.saved_tensors
        normed = x.float() * rstd
        weight4 = weight.float()[None, :, None, None]
        gate = torch.sigmoid(normed * weight4)
        grad_act = grad.float() * gate * (1 + normed * weight4 * (1 - gate))  # d silu(a) / da at a = normed * w
        grad_weight = (grad_act * normed).sum((0, 2, 3)).to(weight.dtype) if ctx.needs_input_grad[1] else None
        grad_normed = grad_act * weight4
        # d/dx of x * rstd(x): rstd * (g - x̂ * mean_c(g * x̂)), x̂ = x * rstd
        grad_x = rstd * (grad_normed - normed * (grad_normed * normed).mean(1, keepdim=True))
        return grad_x.to(x.dtype), grad_weight, None


class ChannelNormSiLU(RMSNorm):
    """RMSNorm over the channel axis of an NCHW tensor, then SiLU: DreamerV3's conv ``Norm`` (float32) and
    activation as one autograd node, which saves ~1-2 full-size activations per conv stage for the backward and
    never permutes to channels-last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ChannelNormSiLU.apply(x, self.weight, self.eps)


def conv2d(in_channels: int, out_channels: int, kernel: int, stride: int = 1, transposed: bool = False,
           ) -> nn.Conv2d | nn.ConvTranspose2d:
    """DreamerV3's ``Conv2D``: 'same' padding, fan-in truncated normal weights, zero bias."""
    if transposed:  # each output pixel of a stride-2, 4x4 transposed conv sees 2x2 taps per input channel
        conv = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=stride, padding=(kernel - stride) // 2)
        fan_in = in_channels * (kernel // stride) ** 2
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=(kernel - stride + 1) // 2)
        fan_in = in_channels * kernel * kernel
    init_fan_in_(conv.weight, fan_in)
    nn.init.zeros_(conv.bias)
    return conv
