import torch

from pvm_mbrl.dreamer.nets import BlockLinear
from pvm_mbrl.dreamer.rssm import RSSM


def make_rssm():
    torch.manual_seed(0)
    return RSSM(embed_dim=10, action_dim=2, deter=16, hidden=8, stoch=4, classes=3, blocks=4)


def test_observe_shapes_and_one_hot_latents():
    rssm = make_rssm()
    post, prior = rssm.observe(torch.randn(2, 5, 10), torch.randn(2, 5, 2), torch.zeros(2, 5))
    assert post.deter.shape == (2, 5, 16) and post.stoch.shape == (2, 5, 4, 3)
    assert torch.all(post.stoch.detach().sum(-1) == 1)
    assert post.feature().shape == (2, 5, rssm.feature_dim) == (2, 5, 16 + 12)
    assert torch.equal(post.deter, prior.deter)  # prior and posterior share the deterministic state


def test_is_first_resets_the_state():
    rssm = make_rssm()
    state = rssm.initial(1, "cpu")
    embed, action = torch.randn(1, 10), torch.randn(1, 2)
    torch.manual_seed(1)
    fresh, _ = rssm.obs_step(state, action, embed, torch.ones(1))
    warm = state
    for _ in range(3):
        warm, _ = rssm.obs_step(warm, torch.randn(1, 2), torch.randn(1, 10), torch.zeros(1))
    torch.manual_seed(1)
    reset, _ = rssm.obs_step(warm, action, embed, torch.ones(1))
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
