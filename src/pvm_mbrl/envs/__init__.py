"""Environments as Gymnasium envs with uint8 image observations; ``make_env`` builds one by name."""
