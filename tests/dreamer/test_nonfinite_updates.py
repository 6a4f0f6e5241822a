"""The agent skips an update whose losses or gradients are not finite, and says which terms were at fault."""

import numpy as np
import pytest
import torch
from tests.dreamer.test_agent import OBS, context_batch, random_batch

from pvm_mbrl.dreamer.agent import Agent, nonfinite_terms
from pvm_mbrl.dreamer.distributions import OneHotCategorical
from pvm_mbrl.dreamer.optim import gradients_finite


def snapshot(agent):
    return {k: v.clone() for k, v in agent.state_dict().items()}


def assert_unchanged(agent, before):
    changed = [k for k, v in agent.state_dict().items() if not torch.equal(v, before[k])]
    assert changed == []


def test_nan_reward_skips_the_update_and_names_the_terms(tiny_config):
    torch.manual_seed(0)
    agent = Agent(tiny_config, OBS, action_dim=1, discrete=False)
    agent.train_step(random_batch(seed=1))  # one applied update first: optimiser state and buffers are non-zero
    before, optimiser_before = snapshot(agent), agent.optimizer.state_dict()
    batch = context_batch(agent, random_batch(length=9))
    batch["reward"][0, 3] = np.nan
    metrics, latents = agent.train_step(batch)
    assert metrics["train/nonfinite"] == 1.0
    assert metrics["nonfinite/rew"] == 1.0 and metrics["nonfinite/repval"] == 1.0
    assert "nonfinite/dyn" not in metrics  # the dynamics never read the reward
    assert latents == {}  # nothing from a skipped update goes back into replay
    # No weight, slow critic, return-normaliser buffer or optimiser moment moved; no gradients left behind.
    assert_unchanged(agent, before)
    assert all(p.grad is None for p in agent.parameters())
    after = agent.optimizer.state_dict()["state"]
    for key, state in optimiser_before["state"].items():
        assert after[key]["step"] == state["step"]
        assert torch.equal(after[key]["m"], state["m"]) and torch.equal(after[key]["v"], state["v"])
    # The next sound batch is applied as usual.
    metrics, latents = agent.train_step(context_batch(agent, random_batch(length=9, seed=2)))
    assert metrics["train/nonfinite"] == 0.0 and latents
    assert not all(torch.equal(v, before[k]) for k, v in agent.state_dict().items())


def test_an_overflowing_loss_scale_is_named(tiny_config):
    torch.manual_seed(0)
    agent = Agent(tiny_config, OBS, action_dim=1, discrete=False)
    agent.scales["value"] = 1e39  # beyond float32: the scaled term is inf (or NaN where the loss is 0)
    before = snapshot(agent)
    metrics, _ = agent.train_step(random_batch())
    assert metrics["train/nonfinite"] == 1.0
    assert sorted(k for k in metrics if k.startswith("nonfinite/")) == ["nonfinite/value"]
    assert np.isfinite(metrics["loss/value"])  # the term itself is finite: only its scaled contribution is not
    assert_unchanged(agent, before)


@pytest.mark.parametrize("discrete", [False, True])
def test_ruined_but_finite_weights_give_a_skipped_update_not_a_crash(tiny_config, discrete):
    """Weights around 1e30 (a huge learning rate's first step): the norms keep the forward pass finite, but the
    gradients overflow; the update is skipped with the fault named, and acting does not raise."""
    torch.manual_seed(0)
    agent = Agent(tiny_config, OBS, action_dim=3, discrete=discrete)
    with torch.no_grad():
        for p in agent.parameters():
            p.normal_(std=1e30)
    before = snapshot(agent)
    batch = random_batch(action_dim=3)
    if discrete:
        batch["action"] = np.eye(3, dtype=np.float32)[np.random.default_rng(0).integers(0, 3, (2, 8))]
    metrics, _ = agent.train_step(batch)
    assert metrics["train/nonfinite"] == 1.0 and any(k.startswith("nonfinite/") for k in metrics)
    assert_unchanged(agent, before)
    action, _ = agent.act({"image": batch["image"][:, 0], "is_first": np.ones(2, bool)}, agent.initial_state(2))
    assert action.shape == (2, 3)  # acting does not raise either (the training loop zeroes non-finite actions)


def test_categorical_sample_survives_nan_rows_and_keeps_the_nan():
    logits = torch.tensor([[0.0, 0.0, 0.0], [float("nan"), 0.0, 1.0], [float("inf"), 0.0, 0.0]])
    sample = OneHotCategorical(logits).sample()
    assert torch.equal(sample[0].detach().sum(), torch.tensor(1.0))
    assert torch.isnan(sample[1]).all() and torch.isnan(sample[2]).all()


def test_gradients_finite_and_the_faults_named():
    a, b = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    c = torch.nn.Parameter(torch.ones(1))  # no gradient: ignored
    a.grad, b.grad = torch.tensor([1e30, -1e30, 0.0]), torch.zeros(2)
    assert gradients_finite([a, b, c]).item()
    b.grad[1] = float("nan")
    assert not gradients_finite([a, b, c]).item()
    b.grad[1] = float("-inf")
    assert not gradients_finite([a, b, c]).item()
    assert nonfinite_terms(["rec", "rew"], [1.0, float("nan")], float("nan"), False) == ["rew"]
    assert nonfinite_terms(["rec", "rew"], [3e38, 3e38], float("inf"), True) == ["total"]  # only the sum overflowed
    assert nonfinite_terms(["rec", "rew"], [1.0, 2.0], 3.0, False) == ["gradients"]
    assert nonfinite_terms(["rec", "rew"], [1.0, 2.0], 3.0, True) == []
