"""DreamerV3 in PyTorch: networks, distributions, RSSM, world model, actor-critic and the agent."""
