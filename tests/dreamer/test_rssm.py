import torch

from pvm_mbrl.dreamer.rssm import RSSM
from pvm_mbrl.nets import BlockLinear


def make_rssm():
    torch.manual_seed(0)
    return RSSM(embed_dim=10, action_dim=2, deter=16, hidden=8, stoch=4, classes=3, blocks=4)


def test_observe_shapes_and_one_hot_latents():
    rssm = make_rssm()
    post, prior_logits = rssm.observe(torch.randn(2, 5, 10), torch.randn(2, 5, 2), torch.zeros(2, 5))
    assert post.deter.shape == (2, 5, 16) and post.stoch.shape == (2, 5, 4, 3)
    assert torch.all(post.stoch.detach().sum(-1) == 1)
    assert post.feature().shape == (2, 5, rssm.feature_dim) == (2, 5, 16 + 12)
    # The prior, computed after the loop on all steps, reads the posterior's deterministic states.
    assert prior_logits.shape == (2, 5, 4, 3)
    assert torch.allclose(prior_logits, rssm.prior_logits(post.deter))
    assert torch.allclose(prior_logits.exp().sum(-1), torch.ones(2, 5, 4), atol=1e-5)


def test_is_first_resets_the_state():
    rssm = make_rssm()
    state = rssm.initial(1, "cpu")
    embed, action = torch.randn(1, 10), torch.randn(1, 2)
    torch.manual_seed(1)
    fresh = rssm.obs_step(state, action, embed, torch.ones(1))
    warm = state
    for _ in range(3):
        warm = rssm.obs_step(warm, torch.randn(1, 2), torch.randn(1, 10), torch.zeros(1))
    torch.manual_seed(1)
    reset = rssm.obs_step(warm, action, embed, torch.ones(1))
    assert torch.allclose(reset.deter, fresh.deter) and torch.allclose(reset.logits, fresh.logits)


def test_block_linear_is_block_diagonal():
    layer = BlockLinear(8, 4, blocks=2, bias=False)
    x = torch.zeros(1, 8)
    x[0, :4] = torch.randn(4)  # only the first block's inputs
    out = layer(x)
    assert torch.all(out[0, 2:] == 0) and torch.any(out[0, :2] != 0)
    assert layer.weight.numel() == 2 * 4 * 2  # a dense layer would have 8 * 4


def test_imagined_step_uses_the_prior():
    rssm = make_rssm()
    state = rssm.initial(3, "cpu")
    nxt = rssm.img_step(state, torch.randn(3, 2))
    assert nxt.stoch.shape == (3, 4, 3) and torch.all(nxt.logits.exp().sum(-1).sub(1).abs() < 1e-5)


def test_block_linear_fan_in_counts_the_whole_input():
    """DreamerV3's ``compute_fans`` of a (blocks, in/blocks, out/blocks) kernel: fan-in = the whole input."""
    torch.manual_seed(0)
    layer = BlockLinear(4096, 512, blocks=8)
    assert abs(layer.weight.std().item() * 4096**0.5 - 1.0) < 0.03
    assert layer.bias is not None and torch.all(layer.bias == 0)


def test_every_linear_layer_of_the_rssm_has_a_bias_where_official_has_one():
    rssm = make_rssm()
    linears = [m for m in rssm.modules() if isinstance(m, torch.nn.Linear | BlockLinear)]
    # The posterior's first layer is split in two (deter part, embed part): one bias serves both.
    without = [m for m in linears if m.bias is None]
    assert without == [rssm.post_embed]


def test_replay_entry_round_trips_a_posterior():
    rssm = make_rssm()
    post, _ = rssm.observe(torch.randn(2, 3, 10), torch.randn(2, 3, 2), torch.zeros(2, 3))
    entry = rssm.replay_entry(post)
    assert entry["latent_deter"].dtype == torch.float16 and entry["latent_stoch"].dtype == torch.uint8
    assert entry["latent_stoch"].shape == (2, 3, 4)
    state = rssm.state_from_entry(entry["latent_deter"], entry["latent_stoch"])
    assert torch.equal(state.stoch, post.stoch.detach())
    assert torch.allclose(state.deter, post.deter, atol=1e-3)


def test_observe_starts_from_a_given_context_state():
    """Replay context: the first posterior's deter is the core step from the stored latent, not from zeros."""
    rssm = make_rssm()
    context, _ = rssm.observe(torch.randn(2, 4, 10), torch.randn(2, 4, 2), torch.zeros(2, 4))
    context = context.map(lambda x: x[:, -1].detach())
    embed, action = torch.randn(2, 3, 10), torch.randn(2, 3, 2)
    post, _ = rssm.observe(embed, action, torch.zeros(2, 3), context)
    expected = rssm._core(context.deter, context.stoch, rssm._project_action(action[:, 0]))
    assert torch.allclose(post.deter[:, 0], expected, atol=1e-6)
    cold, _ = rssm.observe(embed, action, torch.zeros(2, 3))
    assert not torch.allclose(cold.deter[:, 0], expected, atol=1e-3)


def test_posterior_loop_matches_single_steps():
    """``observe`` (projections hoisted out of the loop) gives the posteriors ``obs_step`` gives one at a time."""
    rssm = make_rssm()
    embed, action = torch.randn(2, 4, 10), torch.randn(2, 4, 2) * 2
    is_first = torch.tensor([[1.0, 0, 0, 1], [1, 0, 0, 0]])
    torch.manual_seed(3)
    post, _ = rssm.observe(embed, action, is_first)
    torch.manual_seed(3)
    state = rssm.initial(2, "cpu")
    for t in range(4):
        state = rssm.obs_step(state, action[:, t], embed[:, t], is_first[:, t])
        assert torch.allclose(state.deter, post.deter[:, t], atol=1e-6)
        assert torch.allclose(state.logits, post.logits[:, t], atol=1e-6)


def unfused_channel_norm_silu(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """The reference: torch's RMSNorm over channels-last in float32, then SiLU."""
    normed = torch.nn.functional.rms_norm(x.float().permute(0, 2, 3, 1), (x.shape[1],), weight.float(), eps)
    return torch.nn.functional.silu(normed.permute(0, 3, 1, 2)).to(x.dtype)


def test_channel_norm_silu_equals_rms_norm_over_channels_then_silu_with_its_gradients():
    from pvm_mbrl.nets import ChannelNormSiLU

    torch.manual_seed(0)
    layer = ChannelNormSiLU(6, eps=1e-4)
    torch.nn.init.normal_(layer.weight)
    x = torch.randn(2, 6, 5, 3, requires_grad=True)
    grad = torch.randn(2, 6, 5, 3)
    fused = layer(x)
    (fused * grad).sum().backward()
    x_ref, weight_ref = x.detach().clone().requires_grad_(), layer.weight.detach().clone().requires_grad_()
    reference = unfused_channel_norm_silu(x_ref, weight_ref, 1e-4)
    (reference * grad).sum().backward()
    assert torch.allclose(fused, reference, atol=1e-5)
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)  # the hand-written backward, against autograd's
    assert torch.allclose(layer.weight.grad, weight_ref.grad, atol=1e-4)


def test_channel_norm_silu_keeps_its_input_dtype_in_bf16():
    from pvm_mbrl.nets import ChannelNormSiLU

    layer = ChannelNormSiLU(4, eps=1e-4)
    x = torch.randn(2, 4, 3, 3).bfloat16().requires_grad_()
    out = layer(x)
    out.float().sum().backward()
    assert out.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16 and layer.weight.grad.dtype == torch.float32
    assert torch.allclose(out.float(), unfused_channel_norm_silu(x.detach(), layer.weight.detach(), 1e-4).float(),
                          atol=1e-2)
