"""run_episodes: an episode's sampled actions depend on the checkpoint and its seed only."""

import torch

from pvm_mbrl.dreamer.agent import Agent
from pvm_mbrl.envs.registry import make_env
from pvm_mbrl.envs.spaces import action_info, observation_info
from pvm_mbrl.rollout.episodes import run_episodes


def test_episodes_are_reproducible_and_leave_the_callers_random_stream_alone(tiny_config):
    env = make_env(tiny_config.env, 0)
    torch.manual_seed(0)
    agent = Agent(tiny_config, observation_info(env.observation_space), *action_info(env.action_space))
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = run_episodes(agent, env, [7, 8])
    assert torch.equal(torch.rand(3), expected_next)  # the caller's stream continues as if nothing ran
    torch.rand(1000)  # whatever ran before in the process
    again = run_episodes(agent, env, [8])
    assert again[0] == first[1]  # the same seed: the same sampled actions, the same return
    assert first[0]["return"] != first[1]["return"]  # (different seeds do differ)
    env.close()
