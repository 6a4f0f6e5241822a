"""Running an agent in an env and loading a run's agent: below both training and evaluation, which use them."""
