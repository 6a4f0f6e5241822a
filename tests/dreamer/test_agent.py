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
    metrics, latents = agent.train_step(batch)
    assert latents == {}  # no replay context in this batch: nothing to write back
    if tiny_config.optim.warmup:  # the warm-up's first update has rate 0 (as optax's): weights move from the second
        assert all(torch.equal(v, before[k]) for k, v in agent.state_dict().items() if "critic" in k or "rssm" in k)
        metrics, _ = agent.train_step(batch)
    for key in ("rec", "rew", "con", "dyn", "rep", "policy", "value", "repval"):
        assert np.isfinite(metrics[f"loss/{key}"]), key
    assert metrics["loss/dyn"] >= 1.0 and metrics["loss/rep"] >= 1.0  # free nats
    changed = [k for k, v in agent.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("world_model.rssm") for k in changed)
    assert any(k.startswith("actor_critic.actor") for k in changed)
    assert any(k.startswith("actor_critic.slow_critic") for k in changed)


def test_a_batch_without_context_starts_an_episode_at_its_first_step(tiny_config):
    # the official sampler sets is_first[:, 0]: the zero start state also gets a zero previous action
    batches = [random_batch(), random_batch()]
    batches[1]["is_first"][:, 0] = False  # a chunk sampled from mid-episode, as replay hands it over
    losses = []
    for batch in batches:
        torch.manual_seed(0)
        metrics, _ = Agent(tiny_config, OBS, action_dim=1, discrete=False).train_step(batch)
        losses.append(metrics["loss/rec"])
    assert losses[0] == losses[1]
    assert not batches[1]["is_first"][:, 0].any()  # the caller's batch is left as it was


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
    assert agent.train_step(random_batch(action_dim=2))[0]["loss/total"] == pytest.approx(
        agent.train_step(random_batch(action_dim=2))[0]["loss/total"], rel=1.0)  # finite, same magnitude


def test_replay_value_loss_shapes_the_world_model(tiny_config):
    """Official ``repval_grad: True``: the replay-value loss's gradient reaches the RSSM and the encoder."""
    torch.manual_seed(0)
    agent = Agent(tiny_config, OBS, action_dim=1, discrete=False)
    for p in agent.actor_critic.critic.parameters():  # a non-zero critic output layer, so gradients flow
        torch.nn.init.normal_(p, std=0.1)
    grads = {}

    def capture_repval(batch):
        original = agent.actor_critic.replay_value_loss

        def repval_only(feat, data, bootstrap):
            loss = original(feat, data, bootstrap)
            grads.update(zip(("gru", "encoder"), torch.autograd.grad(
                loss.mean(), [agent.world_model.rssm.gru.weight, next(agent.world_model.encoder.parameters())],
                retain_graph=True, allow_unused=True), strict=True))
            return loss

        agent.actor_critic.replay_value_loss = repval_only
        agent.train_step(batch)

    capture_repval(random_batch())
    assert grads["gru"] is not None and grads["gru"].abs().sum() > 0
    assert grads["encoder"] is not None and grads["encoder"].abs().sum() > 0


def context_batch(agent, batch):
    """``batch`` (T+1 long) with the posterior latents the policy formed while acting, as replay stores them."""
    b, t = batch["is_first"].shape
    state = agent.initial_state(b)
    stored = []
    for step in range(t):
        obs = {"image": batch["image"][:, step], "is_first": batch["is_first"][:, step]}
        _, state = agent.act(obs, state)
        stored.append(agent.replay_latent(state[0]))
    latents = {k: np.stack([s[k] for s in stored], 1) for k in stored[0]}
    return {**batch, **latents}


def test_replay_context_starts_from_the_stored_latent_and_returns_posteriors(tiny_config):
    torch.manual_seed(0)
    agent = Agent(tiny_config, OBS, action_dim=1, discrete=False)
    batch = random_batch(length=9)
    batch["is_first"][0, 5] = False  # one episode from step 0 in both rows
    batch = context_batch(agent, batch)
    seen = {}
    original = agent.world_model.rssm.observe

    def observe(embed, action, is_first, state=None):
        seen["state"], seen["steps"] = state, embed.shape[1]
        return original(embed, action, is_first, state)

    agent.world_model.rssm.observe = observe
    metrics, latents = agent.train_step(batch)
    assert seen["steps"] == 8  # T + 1 replayed, T learned on
    assert torch.allclose(seen["state"].deter, torch.as_tensor(batch["latent_deter"][:, 0]).float())
    assert torch.equal(seen["state"].stoch.argmax(-1), torch.as_tensor(batch["latent_stoch"][:, 0]).long())
    assert latents["latent_deter"].shape == (2, 8, agent.world_model.rssm.deter_dim)
    assert latents["latent_stoch"].shape == (2, 8, agent.world_model.rssm.stoch_dim)
    assert np.isfinite(metrics["loss/total"])


@pytest.mark.parametrize("discrete", [False, True])
def test_initial_policy_is_centred_with_near_maximal_spread(tiny_config, discrete):
    """Official ``policy.outscale: 0.01``: mean ~0 (tanh of ~0) and std ~ (max-min)*sigmoid(2)+min = 0.893."""
    torch.manual_seed(0)
    agent = Agent(tiny_config, OBS, action_dim=4, discrete=discrete)
    policy = agent.actor_critic.policy(torch.randn(256, agent.world_model.rssm.feature_dim) * 3)
    if discrete:
        assert torch.allclose(policy.probs, torch.full_like(policy.probs, 0.25), atol=0.01)
        return
    assert policy.mean.abs().max() < 0.05
    assert torch.allclose(policy.std, torch.full_like(policy.std, 0.9 * torch.sigmoid(torch.tensor(2.0)) + 0.1),
                          atol=0.01)


def test_cnn_features_enter_the_posterior_without_an_extra_norm(tiny_config):
    agent = Agent(tiny_config, OBS, action_dim=1, discrete=False)
    assert isinstance(agent.world_model.feature_norm, torch.nn.Identity)


def test_auto_precision_is_bf16_only_where_the_device_computes_it_natively(tiny_config, monkeypatch):
    from pvm_mbrl.dreamer import agent as agent_module

    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(agent_module, "native_bf16", lambda device, native=native: native)
        assert agent_module.resolve_precision("auto", torch.device("cpu")) == expected
        assert agent_module.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    tiny_config.precision = "auto"
    agent = Agent(tiny_config, OBS, action_dim=1, discrete=False)
    assert agent.precision == "fp32"  # the monkeypatched device has no native bf16
