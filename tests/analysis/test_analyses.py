"""The analyses of what encoders learned, on inputs whose answers are known by hand."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from pvm_mbrl.analysis.correlations import Correlation, property_correlations
from pvm_mbrl.analysis.objectness import jaccard, mass_threshold, objectness
from pvm_mbrl.analysis.representations import domain_classifier_accuracy, umap_embedding
from pvm_mbrl.encoders.registry import make_encoder
from pvm_mbrl.evaluation.forgetting import digit_images, forgetting, knn_accuracy


def square(size, top, left, side):
    mask = np.zeros((size, size), dtype=bool)
    mask[top:top + side, left:left + side] = True
    return mask


def test_jaccard_of_known_masks():
    a, b = square(8, 0, 0, 2), square(8, 1, 1, 2)  # 4 + 4 pixels sharing 1: 1 / 7
    assert jaccard(a, b) == pytest.approx(1 / 7)
    assert jaccard(a, a) == 1.0 and jaccard(a, square(8, 4, 4, 2)) == 0.0
    with pytest.raises(ValueError, match="two empty masks"):
        jaccard(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="differ in shape"):
        jaccard(np.zeros((2, 2)), np.zeros((3, 3)))


def test_mass_threshold_keeps_the_top_pixels_holding_the_mass():
    saliency = np.array([[0.5, 0.3], [0.15, 0.05]])
    assert mass_threshold(saliency, 0.6).tolist() == [[True, True], [False, False]]  # 0.5 < 0.6 <= 0.8
    assert mass_threshold(saliency, 0.5).tolist() == [[True, False], [False, False]]
    assert mass_threshold(saliency, 1.0).all()
    with pytest.raises(ValueError, match="mass must be in"):
        mass_threshold(saliency, 0.0)


def test_objectness_of_known_maps_skips_frames_without_the_object():
    mask = square(8, 2, 2, 3)  # rows and columns 2-4: 9 pixels
    on_object = mask.astype(float)  # 60% of its mass: 6 of the 9 object pixels -> 6 / 9
    spread = np.ones((8, 8))  # 60% of a uniform map: the first 39 of 64 pixels (rows 0-3, row 4 up to column 6),
    score, used = objectness(np.stack([on_object, spread, spread]),  # which hold the whole object -> 9 / 39
                             np.stack([mask, mask, np.zeros_like(mask)]))
    assert used == 2 and score == pytest.approx((6 / 9 + 9 / 39) / 2)
    assert objectness(on_object[None], mask[None], mass=1.0) == (1.0, 1)
    with pytest.raises(ValueError, match="visible in none"):
        objectness(spread[None], np.zeros((1, 8, 8), bool))


def test_domain_classifier_separates_separated_latents_and_not_identical_ones():
    rng = np.random.default_rng(0)
    z_id = rng.normal(0, 1, (150, 8))
    assert domain_classifier_accuracy(z_id, z_id + np.r_[10.0, np.zeros(7)]) == 1.0
    same = domain_classifier_accuracy(z_id[:75], z_id[75:])
    assert 0.35 < same < 0.65  # chance is 0.5: both halves come from one distribution
    with pytest.raises(ValueError, match="latents per domain"):
        domain_classifier_accuracy(z_id[:3], z_id[3:6])


def test_umap_keeps_separated_domains_apart():
    rng = np.random.default_rng(0)
    z_id, z_ood = rng.normal(0, 1, (60, 8)), rng.normal(0, 1, (60, 8)) + 8
    embedding = umap_embedding(z_id, z_ood)
    assert embedding.shape == (120, 2)
    assert domain_classifier_accuracy(embedding[:60], embedding[60:]) == 1.0


def test_knn_accuracy_on_separable_and_on_random_labels():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 50)
    separable = np.eye(4)[labels] + rng.normal(0, 0.05, (200, 4))
    assert knn_accuracy(separable, labels) == 1.0
    noise = rng.normal(0, 1, (200, 4))
    assert knn_accuracy(noise, labels) < 0.5  # chance is 0.25


def test_digit_images_are_rgb_uint8_at_the_requested_size_with_all_classes():
    images, labels = digit_images(32, count=100)
    assert images.shape == (100, 32, 32, 3) and images.dtype == np.uint8
    assert sorted(set(labels)) == list(range(10)) and images.max() > 200
    assert (images[..., 0] == images[..., 2]).all()  # grey
    with pytest.raises(ValueError, match="between 10 and 1797"):
        digit_images(32, count=5)


def test_forgetting_of_an_unchanged_encoder_is_zero_and_a_scrambled_one_loses_accuracy():
    torch.manual_seed(0)
    cfg = OmegaConf.create({"name": "cnn", "depth": 4, "downsample": "stride"})
    before = make_encoder(cfg, 32, 4)
    same = forgetting(before, before, images=300)
    assert same["before"] == same["after"] > 0.5  # real digit features: well above chance (0.1)
    after = make_encoder(cfg, 32, 4)
    with torch.no_grad():
        for parameter in after.parameters():  # a destroyed encoder: constant features (a re-randomised CNN
            parameter.zero_()                  # is still a fair random-feature extractor for k-NN on digits)
    result = forgetting(before, after, images=300)
    assert result["after"] < result["before"]


def test_correlations_known_values_and_undefined_cases():
    target = {"a": 0.0, "b": 1.0, "c": 2.0, "d": 3.0}
    results = property_correlations({"linear": {"a": 1, "b": 3, "c": 5, "d": 7},
                                     "reversed": {"a": 3, "b": 2, "c": 1, "d": 0},
                                     "two models": {"a": 1, "b": 2},
                                     "constant": {"a": 1, "b": 1, "c": 1}}, target)
    assert isinstance(results["linear"], Correlation) and results["linear"].r == pytest.approx(1.0)
    assert results["reversed"].r == pytest.approx(-1.0) and results["reversed"].models == 4
    assert "at least 3 models" in results["two models"] and "the same for every model" in results["constant"]
