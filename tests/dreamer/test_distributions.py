import math

import pytest
import torch

from pvm_mbrl.dreamer.distributions import (
    BoundedNormal,
    OneHotCategorical,
    SymexpTwoHot,
    categorical_index,
    categorical_kl,
    free_nats_kl,
    unimix_logits,
)


def test_unimix_mixes_in_one_percent_uniform():
    logits = torch.tensor([[100.0, -100.0]])
    probs = unimix_logits(logits, 0.01).exp()
    assert torch.allclose(probs, torch.tensor([[0.995, 0.005]]), atol=1e-6)
    flat = unimix_logits(torch.zeros(1, 4), 0.01).exp()
    assert torch.allclose(flat, torch.full((1, 4), 0.25))
    with pytest.raises(ValueError, match="unimix"):
        unimix_logits(logits, 1.5)


def test_policy_without_unimix_stays_finite_at_extreme_logits():
    # softmax of [0, -200] underflows to exactly 0 in float32: log(softmax) gave -inf and 0 * -inf = NaN entropy
    dist = OneHotCategorical(torch.tensor([[0.0, -200.0]]))
    assert dist.logits[0, 1].item() == pytest.approx(-200.0)
    assert dist.entropy().item() == 0.0
    assert dist.log_prob(torch.tensor([[0.0, 1.0]])).item() == pytest.approx(-200.0)


def test_categorical_kl_hand_value():
    lhs = torch.log(torch.tensor([0.5, 0.5]))
    rhs = torch.log(torch.tensor([0.25, 0.75]))
    expected = 0.5 * math.log(2) + 0.5 * math.log(2 / 3)
    assert categorical_kl(lhs, rhs).item() == pytest.approx(expected, abs=1e-6)


def test_free_nats_clips_small_kl_without_gradient():
    rhs = torch.log(torch.full((1, 32, 2), 0.5)).requires_grad_()
    lhs = torch.log(torch.tensor([0.5, 0.5])).expand(1, 32, 2)
    kl = free_nats_kl(lhs, rhs, free_nats=1.0)  # identical: KL 0, clipped to 1
    assert kl.item() == 1.0
    kl.sum().backward()
    assert torch.all(rhs.grad == 0)
    big_rhs = torch.log(torch.tensor([0.25, 0.75])).expand(1, 32, 2)
    expected = 32 * (0.5 * math.log(2) + 0.5 * math.log(2 / 3))  # 4.60 > 1 nat: not clipped
    assert free_nats_kl(lhs, big_rhs, 1.0).item() == pytest.approx(expected, rel=1e-5)


def test_categorical_index_inverts_the_cdf_at_hand_computed_points():
    probs = torch.tensor([0.2, 0.5, 0.0, 0.3]).expand(7, 4)  # cdf 0.2, 0.7, 0.7, 1.0
    uniform = torch.tensor([0.0, 0.19, 0.21, 0.69, 0.71, 0.999, 1.0])
    assert categorical_index(probs, uniform).tolist() == [0, 0, 1, 1, 3, 3, 3]  # never the empty class 2
    unnormalised = torch.tensor([[1.0, 1.0, 2.0]])  # cdf / sum: 0.25, 0.5, 1.0
    assert categorical_index(unnormalised.expand(2, 3), torch.tensor([0.3, 0.6])).tolist() == [1, 2]


def test_one_hot_samples_follow_the_class_probabilities():
    torch.manual_seed(0)
    probs = torch.tensor([0.05, 0.6, 0.0, 0.35])
    counts = OneHotCategorical(probs.log().expand(200_000, 4)).sample().detach().sum(0)
    assert counts[2] == 0
    assert torch.allclose(counts / counts.sum(), probs, atol=0.005)  # binomial std <= 0.0011


def test_one_hot_sample_has_straight_through_gradient():
    torch.manual_seed(0)
    logits = torch.randn(5, 3, requires_grad=True)
    dist = OneHotCategorical(logits, unimix=0.01)
    sample = dist.sample()
    assert torch.all(sample.detach().sum(-1) == 1) and set(sample.detach().unique().tolist()) <= {0.0, 1.0}
    (sample * torch.arange(3.0)).sum().backward()
    probs = torch.softmax(logits.detach(), -1)
    assert logits.grad is not None and logits.grad.abs().sum() > 0
    # d(sum_k k*p_k)/dlogit_j = p_j (j - E[k]) scaled by (1 - unimix)
    expected = 0.99 * probs * (torch.arange(3.0) - (probs * torch.arange(3.0)).sum(-1, keepdim=True))
    assert torch.allclose(logits.grad, expected, atol=1e-5)


def test_bounded_normal_std_range_and_entropy():
    dist = BoundedNormal(torch.zeros(2, 1), torch.tensor([[-100.0], [100.0]]))
    assert torch.allclose(dist.std.squeeze(), torch.tensor([0.1, 1.0]))
    entropy = dist.entropy()
    assert entropy[1].item() == pytest.approx(0.5 + 0.5 * math.log(2 * math.pi), abs=1e-5)
    assert dist.log_prob(torch.zeros(2, 1))[1].item() == pytest.approx(-0.5 * math.log(2 * math.pi), abs=1e-5)


def test_symexp_twohot_zero_logits_predict_zero_and_learn_target():
    logits = torch.zeros(3, 255, requires_grad=True)
    dist = SymexpTwoHot(logits)
    assert torch.allclose(dist.mean(), torch.zeros(3), atol=1e-4)
    optimiser = torch.optim.Adam([logits], lr=0.1)
    target = torch.tensor([1.0, -20.0, 300.0])
    for _ in range(300):
        optimiser.zero_grad()
        SymexpTwoHot(logits).loss(target).sum().backward()
        optimiser.step()
    assert torch.allclose(SymexpTwoHot(logits).mean(), target, rtol=0.05)
