"""Training: configuration, the loop, checkpoints and resume, metrics logging."""
