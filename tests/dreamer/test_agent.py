import numpy as np
import pytest
import torch

from pvm_mbrl.dreamer.agent import Agent

OBS = {"image_size": 32, "vectors": {}}


def random_batch(batch=2, length=8, size=32, action_dim=1, seed=0):
    rng = np.random.default_rng(seed)
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    is_first[0, 5] = True  # an episode boundary inside a sequence
    is_last = np.zeros((batch, length), bool)
    is_last[0, 4] = True
    return {
        "image": rng.integers(0, 255, (batch, length, size, size, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (batch, length, action_dim)).astype(np.float32),
        "reward": rng.normal(size=(batch, length)).astype(np.float32),
        "is_first": is_first, "is_last": is_last, "is_terminal": is_last.copy(),
    }


def world_model_params(agent):
    return {name: p for name, p in agent.named_parameters() if name.startswith("world_model.")}


def test_actor_gradients_do_not_reach_world_model(tiny_config):
    torch.manual_seed(0)
    agent = Agent(tiny_config, OBS, action_dim=1, discrete=False)
    data = {k: torch.as_tensor(v) for k, v in random_batch().items()}
    data["action"], data["reward"] = data["action"].float(), data["reward"].float()
    _, post = agent.world_model.loss(data)
    start = post.map(lambda x: x.detach().reshape(-1, *x.shape[2:]))
    losses, _, _ = agent.actor_critic.imagination_loss(agent.world_model, start, data["is_terminal"].reshape(-1))
    agent.zero_grad(set_to_none=True)
    losses["policy"].mean().backward()
    assert all(p.grad is None for p in world_model_params(agent).values())
    assert all(p.grad is None for p in agent.actor_critic.critic.parameters())
    actor_grads = [p.grad for p in agent.actor_critic.actor.parameters()]
    assert all(g is not None for g in actor_grads) and sum(g.abs().sum() for g in actor_grads) > 0


@pytest.mark.parametrize("discrete", [False, True])
def test_train_step_reports_every_loss_and_updates_weights(tiny_config, discrete):
    torch.manual_seed(0)
    agent = Agent(tiny_config, OBS, action_dim=3, discrete=discrete)
    before = {k: v.clone() for k, v in agent.state_dict().items()}
    batch = random_batch(action_dim=3)
    if discrete:
        batch["action"] = np.eye(3, dtype=np.float32)[np.random.default_rng(0).integers(0, 3, (2, 8))]
    metrics = agent.train_step(batch)
    for key in ("rec", "rew", "con", "dyn", "rep", "policy", "value", "repval"):
        assert np.isfinite(metrics[f"loss/{key}"]), key
    assert metrics["loss/dyn"] >= 1.0 and metrics["loss/rep"] >= 1.0  # free nats
    changed = [k for k, v in agent.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("world_model.rssm") for k in changed)
    assert any(k.startswith("actor_critic.actor") for k in changed)
    assert any(k.startswith("actor_critic.slow_critic") for k in changed)


def test_reward_and_critic_outputs_start_at_zero(tiny_config):
    agent = Agent(tiny_config, OBS, action_dim=1, discrete=False)
    feat = torch.randn(4, agent.world_model.rssm.feature_dim)
    assert torch.allclose(agent.world_model.reward(feat).mean(), torch.zeros(4), atol=1e-5)
    assert torch.allclose(agent.actor_critic.value(feat).mean(), torch.zeros(4), atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_act_gives_bounded_actions_in_both_precisions(tiny_config, precision):
    tiny_config.precision = precision
    agent = Agent(tiny_config, OBS, action_dim=2, discrete=False)
    state = agent.initial_state(3)
    obs = {"image": np.zeros((3, 32, 32, 3), np.uint8), "is_first": np.ones(3, bool)}
    for _ in range(2):
        action, state = agent.act(obs, state)
        obs["is_first"][:] = False
    assert action.shape == (3, 2) and np.all(np.abs(action) <= 1.0)
    assert agent.train_step(random_batch(action_dim=2))["loss/total"] == pytest.approx(
        agent.train_step(random_batch(action_dim=2))["loss/total"], rel=1.0)  # finite, same magnitude
