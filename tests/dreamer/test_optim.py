import pytest
import torch

from pvm_mbrl.dreamer.optim import LaProp, agc_factor, warmup_lr


def test_agc_factor_hand_values():
    assert agc_factor(torch.tensor(10.0), torch.tensor(1.0), 0.3).item() == pytest.approx(0.03)
    assert agc_factor(torch.tensor(0.1), torch.tensor(1.0), 0.3).item() == 1.0  # small gradients untouched
    assert agc_factor(torch.tensor(1.0), torch.tensor(0.0), 0.3).item() == pytest.approx(0.3e-3)


def test_warmup_is_linear():
    assert warmup_lr(1e-3, 0, 1000) == 0.0
    assert warmup_lr(1e-3, 250, 1000) == pytest.approx(2.5e-4)
    assert warmup_lr(1e-3, 5000, 1000) == 1e-3


def test_warmup_first_update_has_rate_zero_as_optax():
    # optax.linear_schedule(0, lr, warmup) at counts 0, 1, 2 (DreamerV3's ramp): 0, lr / warmup, 2 lr / warmup
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimiser = LaProp([param], lr=0.1, agc=0.0, warmup=4)
    moved = []
    for _ in range(3):
        param.grad = torch.tensor([1.0, -1.0])
        before = param.detach().clone()
        optimiser.step()
        moved.append((before - param.detach()).abs()[0].item())
    assert moved[0] == 0.0 and optimiser.state[param]["m"].abs().sum() > 0  # no move, moments accumulate
    # constant gradient: bias-corrected momentum of g / |g| is 1, so the move is the scheduled rate
    assert moved[1:] == pytest.approx([0.1 / 4, 0.2 / 4])


def test_laprop_first_step_moves_by_lr_times_sign():
    param = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    optimiser = LaProp([param], lr=0.1, agc=0.0, warmup=0)
    param.grad = torch.tensor([0.5, -4.0, 0.0])
    optimiser.step()
    # bias-corrected: v_hat = g^2, m_hat = g / |g| -> step = lr * sign(g)
    assert torch.allclose(param.detach(), torch.tensor([0.9, -1.9, 3.0]))


def reference_laprop_step(params, states, lr, b1, b2, eps, agc, warmup):
    """LaProp one tensor at a time (the textbook loop), to check the multi-tensor kernels against."""
    for p, state in zip(params, states, strict=True):
        grad = p.grad * agc_factor(p.grad.norm(), p.detach().norm(), agc) if agc else p.grad
        state["t"] = state.get("t", 0) + 1
        t = state["t"]
        state["v"] = b2 * state.get("v", torch.zeros_like(p)) + (1 - b2) * grad**2
        denom = (state["v"] / (1 - b2**t)).sqrt() + eps
        state["m"] = b1 * state.get("m", torch.zeros_like(p)) + (1 - b1) * grad / denom
        p.data -= warmup_lr(lr, t - 1, warmup) / (1 - b1**t) * state["m"]


def test_multi_tensor_step_matches_the_per_tensor_reference():
    torch.manual_seed(0)
    shapes = [(4, 3), (7,), (2, 2, 2)]
    ours = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    optimiser = LaProp(ours, lr=1e-2, agc=0.3, warmup=3, eps=1e-8)
    states = [{} for _ in ref]
    for step in range(5):
        grads = [torch.randn(s) * (10 if step == 2 else 1) for s in shapes]  # step 2 triggers the clipping
        for p, q, g in zip(ours, ref, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        if step == 3:
            ours[1].grad = ref[1].grad = None  # a parameter without a gradient keeps its own step count
        optimiser.step()
        reference_laprop_step([q for q in ref if q.grad is not None],
                              [s for s, q in zip(states, ref, strict=True) if q.grad is not None],
                              1e-2, 0.9, 0.999, 1e-8, 0.3, 3)
    for p, q in zip(ours, ref, strict=True):
        assert torch.allclose(p, q, atol=1e-6)
    assert optimiser.state[ours[1]]["step"] == 4 and optimiser.state[ours[0]]["step"] == 5
