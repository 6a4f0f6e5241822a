"""Running trained agents without training: evaluation episodes."""
