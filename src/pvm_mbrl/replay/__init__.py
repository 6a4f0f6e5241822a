"""Replay storage for sequences of environment steps."""
