"""Catastrophic forgetting (paper Fig. 5): k-NN classification accuracy with an encoder's features before and
after fine-tuning, on a labelled image set.

The paper classifies a 20K-image ImageNet sample; ImageNet cannot be had offline, so the labelled set here is
scikit-learn's bundled handwritten digits (1,797 8x8 images, 10 classes), up-sampled to the encoder's input size
and grey-to-RGB. Absolute accuracies are not comparable with the paper's; the drop from "before" to "after" is
what measures forgetting. Features are L2-normalised (cosine k-NN, as DINO's k-NN evaluation) so that a change in
feature scale alone does not move the accuracy.
"""

from __future__ import annotations

import numpy as np
import torch

from pvm_mbrl.encoders.base import ImageEncoder


def digit_images(size: int, count: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 RGB ``[N, size, size, 3]`` (white on black) and their labels.

    ``count`` draws a seeded, class-stratified subset (all 1,797 when ``None``).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images, digits.target
    if count is not None:
        if not 10 <= count <= len(labels):
            raise ValueError(f"count must be between 10 and {len(labels)} digit images, got {count}")
        from sklearn.model_selection import train_test_split

        if count < len(labels):
            _, images, _, labels = train_test_split(images, labels, test_size=count, stratify=labels,
                                                    random_state=seed)
    pixels = torch.as_tensor(images / 16.0 * 255.0, dtype=torch.float32)[:, None]
    resized = torch.nn.functional.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    rgb = resized.round().clamp(0, 255).to(torch.uint8)[:, 0, :, :, None].expand(-1, -1, -1, 3)
    return rgb.contiguous().numpy(), np.asarray(labels)


@torch.no_grad()
def encoder_features(encoder: ImageEncoder, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """One feature vector per image: token features ``[tokens, dim]`` are averaged over tokens, others flattened."""
    encoder.eval()
    device = next(encoder.parameters()).device
    out = []
    for start in range(0, len(images), batch):
        features = encoder(torch.as_tensor(images[start:start + batch], device=device)).float()
        out.append((features.mean(1) if features.dim() == 3 else features.flatten(1)).cpu().numpy())
    return np.concatenate(out)


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5, test_fraction: float = 0.2,
                 seed: int = 0) -> float:
    """Test accuracy of a ``k``-NN classifier (cosine: rows L2-normalised) on a seeded stratified split."""
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import KNeighborsClassifier

    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"features must be [samples, dims] with one label each, got {features.shape} and "
                         f"{labels.shape}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    features = features / np.where(norms > 0, norms, 1.0)
    x_train, x_test, y_train, y_test = train_test_split(features, labels, test_size=test_fraction,
                                                        stratify=labels, random_state=seed)
    if len(x_train) < k:
        raise ValueError(f"{k}-NN needs at least {k} training images, got {len(x_train)}")
    return float(KNeighborsClassifier(k).fit(x_train, y_train).score(x_test, y_test))


def forgetting(before: ImageEncoder, after: ImageEncoder, images: int | None = None, k: int = 5,
               seed: int = 0) -> dict[str, float]:
    """k-NN digit accuracy with the encoder before fine-tuning (fresh pre-trained weights) and after it."""
    if before.image_size != after.image_size:
        raise ValueError(f"before/after encoders take different sizes: {before.image_size} vs {after.image_size}")
    pixels, labels = digit_images(before.image_size, images, seed)
    return {"before": knn_accuracy(encoder_features(before, pixels), labels, k, seed=seed),
            "after": knn_accuracy(encoder_features(after, pixels), labels, k, seed=seed),
            "images": len(labels), "k": k}
