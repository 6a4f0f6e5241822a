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


FACTORIES = ("linspace", "arange", "zeros", "ones", "full", "empty", "eye", "tensor", "rand", "randn", "randint")


def factory_nodes_without_device(function, *args) -> list[str]:
    """Tensor factories in ``function``'s dynamo graphs that name no device: on a GPU they make CPU tensors, and
    inductor then skips CUDA graphs for the whole graph (``reduce-overhead`` silently becomes ``default``)."""
    explanation = torch._dynamo.explain(function)(*args)
    assert explanation.graph_break_count == 0
    return [f"{node.target}" for graph in explanation.graphs for node in graph.graph.nodes
            if node.op == "call_function" and getattr(node.target, "__name__", "") in FACTORIES
            and "device" not in node.kwargs]


@pytest.mark.slow
def test_compiled_losses_make_every_tensor_on_the_batch_device(tiny_overrides):
    agent, _ = trained_agent(tiny_overrides, "off", 0)
    data = {k: torch.as_tensor(v) for k, v in random_batch(length=6, seed=0).items()}
    data["is_first"][:, 0] = True
    data["action"], data["reward"] = data["action"].float(), data["reward"].float()
    assert factory_nodes_without_device(agent.world_model.loss, data, None) == []
    _, post = agent.world_model.loss(data, None)
    start = post.map(lambda x: x.detach().reshape(-1, *x.shape[2:]))
    assert factory_nodes_without_device(agent.actor_critic.imagination_loss, agent.world_model, start,
                                        data["is_terminal"].reshape(-1)) == []
