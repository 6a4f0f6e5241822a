"""What the world model's latents say about invariance (paper Fig. 6): a UMAP picture of ``z_t`` from ID and
hard-OOD observations, and a number for how much the two clouds overlap, so invariance is measured, not only drawn.

The overlap number is the cross-validated accuracy of a k-NN *domain* classifier that tries to tell an ID latent
from a hard-OOD one: 0.5 (chance, with balanced classes) means the encoder maps both domains onto the same
latents, 1.0 means they are fully separated. It is computed on the latents themselves, not on the UMAP picture,
whose distances are not faithful.
"""

from __future__ import annotations

import numpy as np


def _two_domains(z_id: np.ndarray, z_ood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z_id, z_ood = np.asarray(z_id, dtype=np.float32), np.asarray(z_ood, dtype=np.float32)
    for name, z in (("z_id", z_id), ("z_ood", z_ood)):
        if z.ndim != 2 or len(z) == 0:
            raise ValueError(f"{name} must be a non-empty [samples, features] array, got shape {z.shape}")
    if z_id.shape[1] != z_ood.shape[1]:
        raise ValueError(f"z_id and z_ood differ in feature size: {z_id.shape[1]} vs {z_ood.shape[1]}")
    return z_id, z_ood


def domain_classifier_accuracy(z_id: np.ndarray, z_ood: np.ndarray, k: int = 5, folds: int = 5,
                               seed: int = 0) -> float:
    """Cross-validated accuracy of a k-NN classifier telling ID latents from hard-OOD ones (0.5 = full overlap).

    The larger domain is subsampled (seeded) to the smaller one's size so chance is exactly 0.5; ``folds``-fold
    stratified cross-validation; Euclidean k-NN with ``k`` neighbours.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    z_id, z_ood = _two_domains(z_id, z_ood)
    count = min(len(z_id), len(z_ood))
    if count < folds or count * (folds - 1) // folds < k:
        raise ValueError(f"need at least {max(folds, k * folds // (folds - 1) + 1)} latents per domain for "
                         f"{folds}-fold {k}-NN, got {len(z_id)} ID and {len(z_ood)} OOD")
    rng = np.random.default_rng(seed)
    x = np.concatenate([z[rng.choice(len(z), count, replace=False)] for z in (z_id, z_ood)])
    y = np.repeat([0, 1], count)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(KNeighborsClassifier(k), x, y, cv=splitter).mean())


def umap_embedding(z_id: np.ndarray, z_ood: np.ndarray, n_neighbors: int = 20, min_dist: float = 0.3,
                   seed: int = 0) -> np.ndarray:
    """UMAP of the pooled latents to 2-D with the paper's settings; rows: ``z_id`` first, then ``z_ood``."""
    import umap

    z_id, z_ood = _two_domains(z_id, z_ood)
    pooled = np.concatenate([z_id, z_ood])
    if len(pooled) <= n_neighbors:
        raise ValueError(f"UMAP with n_neighbors={n_neighbors} needs more than {n_neighbors} latents, "
                         f"got {len(pooled)}")
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, random_state=seed, n_jobs=1)
    return reducer.fit_transform(pooled)
