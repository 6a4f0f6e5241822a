"""Where an encoder looks: [CLS]-to-patch attention for ViTs, gradient saliency for CNNs."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cls_attention(query: torch.Tensor, key: torch.Tensor, heads: int, prefix_tokens: int = 1) -> torch.Tensor:
    """Attention of the [CLS] token to every patch token, averaged over heads: ``[N, patches]``.

    ``query`` and ``key`` are the last block's projections ``[N, tokens, dim]``; ``prefix_tokens`` counts
    [CLS] and any register tokens, which are excluded from the patches.
    """
    n, tokens, dim = query.shape
    q = query.reshape(n, tokens, heads, dim // heads).transpose(1, 2)
    k = key.reshape(n, tokens, heads, dim // heads).transpose(1, 2)
    weights = torch.softmax((q[:, :, :1] @ k.transpose(-1, -2)) * (dim // heads) ** -0.5, -1)  # [N, H, 1, T]
    return weights[:, :, 0, prefix_tokens:].mean(1)


def patches_to_image(values: torch.Tensor, image_size: int) -> torch.Tensor:
    """Square grid of per-patch values ``[N, P]`` up-sampled to ``[N, image_size, image_size]`` in [0, 1]."""
    side = int(round(values.shape[-1] ** 0.5))
    grid = values.reshape(-1, 1, side, side).float()
    return normalise_per_image(F.interpolate(grid, size=(image_size, image_size), mode="bilinear")[:, 0])


def normalise_per_image(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map to [0, 1] (constant maps become 0)."""
    flat = maps.flatten(1)
    low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - low) / (high - low).clamp(min=1e-12)).reshape(maps.shape)


def gradient_saliency(encoder: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """|d ||features||^2 / d pixel|, max over colour channels: ``[N, H, W]`` in [0, 1].

    Works for any encoder taking uint8 images, by differentiating through a float copy of the pixels.
    """
    pixels = images.float().requires_grad_()
    with torch.enable_grad():
        features = encoder.encode_float(pixels)
        features.float().pow(2).sum().backward()
    return normalise_per_image(pixels.grad.abs().amax(-1))
