"""Objectness (paper Table IV's "Jaccard index"): how well the region an encoder attends to matches the object.

The paper thresholds ViT attention maps on VOC; here the encoder's ``saliency_map`` (last-block [CLS] attention
for ViTs, gradient saliency otherwise) is compared with the target object's mask from the simulator. Thresholding
follows DINO: keep the most-attended pixels that together hold ``mass`` (60%) of the map's total attention.
"""

from __future__ import annotations

import numpy as np


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks of one shape; undefined (ValueError) when both are empty."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    union = np.count_nonzero(a | b)
    if union == 0:
        raise ValueError("the Jaccard index of two empty masks is undefined")
    return np.count_nonzero(a & b) / union


def mass_threshold(saliency: np.ndarray, mass: float = 0.6) -> np.ndarray:
    """The smallest set of highest-valued pixels whose values sum to at least ``mass`` of the map's total."""
    values = np.asarray(saliency, dtype=np.float64)
    if not 0 < mass <= 1:
        raise ValueError(f"mass must be in (0, 1], got {mass}")
    if values.size == 0 or not np.all(np.isfinite(values)) or values.min() < 0:
        raise ValueError("a saliency map must be non-empty, finite and non-negative")
    flat = values.ravel()
    total = flat.sum()
    if total == 0:
        return np.zeros(values.shape, dtype=bool)
    order = np.argsort(-flat, kind="stable")
    kept = int(np.searchsorted(np.cumsum(flat[order]), mass * total * (1 - 1e-12))) + 1
    mask = np.zeros(flat.size, dtype=bool)
    mask[order[:kept]] = True
    return mask.reshape(values.shape)


def objectness(saliency_maps: np.ndarray, object_masks: np.ndarray, mass: float = 0.6) -> tuple[float, int]:
    """Mean Jaccard index of thresholded saliency maps ``[N, H, W]`` and object masks over frames whose object is
    visible; returns ``(mean, frames used)``. ValueError when the object is visible in no frame."""
    saliency_maps, object_masks = np.asarray(saliency_maps), np.asarray(object_masks, dtype=bool)
    if saliency_maps.shape != object_masks.shape or saliency_maps.ndim != 3:
        raise ValueError(f"saliency maps and masks must both be [N, H, W], got {saliency_maps.shape} and "
                         f"{object_masks.shape}")
    visible = [i for i in range(len(object_masks)) if object_masks[i].any()]
    if not visible:
        raise ValueError(f"the object is visible in none of the {len(object_masks)} frames")
    scores = [jaccard(mass_threshold(saliency_maps[i], mass), object_masks[i]) for i in visible]
    return float(np.mean(scores)), len(visible)
