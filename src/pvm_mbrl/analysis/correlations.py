"""Which model properties go with hard-OOD return (paper Table IV): Pearson correlations across models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Correlation:
    """Pearson's r between a property and the target across ``models`` (those with both values), its p-value."""

    r: float
    p_value: float
    models: int


def property_correlations(properties: Mapping[str, Mapping[str, float]], target: Mapping[str, float],
                          ) -> dict[str, Correlation | str]:
    """Per property, Pearson's r with ``target`` across models; a reason string where r is undefined.

    ``properties`` maps property name -> {model: value}; ``target`` maps model -> its hard-OOD return (both
    already averaged over seeds, as the paper does). Models missing a value or with a non-finite one are left
    out of that property's correlation; fewer than 3 models or a constant column leave it undefined.
    """
    from scipy.stats import pearsonr

    results: dict[str, Correlation | str] = {}
    for name, values in properties.items():
        models = [m for m in values if m in target and np.isfinite(values[m]) and np.isfinite(target[m])]
        x = np.array([values[m] for m in models], dtype=float)
        y = np.array([target[m] for m in models], dtype=float)
        if len(models) < 3:
            results[name] = f"needs at least 3 models with a value, has {len(models)}"
        elif np.ptp(x) == 0 or np.ptp(y) == 0:
            results[name] = "undefined: the values are the same for every model"
        else:
            r, p = pearsonr(x, y)
            results[name] = Correlation(float(r), float(p), len(models))
    return results
