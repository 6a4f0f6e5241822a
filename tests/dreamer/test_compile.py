"""``compile=default`` runs the same update as eager mode (the losses' numbers within float tolerance).

Inductor draws random numbers its own way; ``fallback_random`` makes it use eager's generator, so both modes
sample the same latents and actions and any difference left is the compiled arithmetic's."""

import pytest
import torch
from tests.dreamer.test_agent import OBS, random_batch

from pvm_mbrl.dreamer.agent import Agent
from pvm_mbrl.training.config import compose_config


def trained_agent(overrides: list[str], mode: str, updates: int) -> tuple[Agent, list[dict[str, float]]]:
    """Short sequences and imagination: the compiled graph unrolls both, and its size sets the compile time."""
    torch.manual_seed(0)
    agent = Agent(compose_config([*overrides, f"compile={mode}", "replay_context=0",
                                   "actor_critic.imag_length=2"]), OBS, action_dim=1,
                  discrete=False)
    return agent, [agent.train_step(random_batch(length=6, seed=i))[0] for i in range(updates)]


@pytest.mark.slow
def test_compiled_updates_match_eager_ones(tiny_overrides):
    eager, eager_metrics = trained_agent(tiny_overrides, "off", 2)
    with torch._inductor.config.patch(fallback_random=True):
        compiled, compiled_metrics = trained_agent(tiny_overrides, "default", 2)
    assert compiled.world_model_loss is not compiled.world_model.loss  # the compiled wrapper ran
    for before, after in zip(eager_metrics, compiled_metrics, strict=True):
        for key in ("loss/rec", "loss/dyn", "loss/rew", "loss/value", "loss/policy", "loss/repval", "loss/total"):
            assert after[key] == pytest.approx(before[key], rel=1e-3, abs=1e-4), key
    for (name, p_eager), p_compiled in zip(eager.named_parameters(), compiled.parameters(), strict=True):
        torch.testing.assert_close(p_compiled, p_eager, rtol=1e-3, atol=1e-4, msg=name)
