"""pvm-mbrl: DreamerV3 agents with pre-trained vision encoders, evaluated under visual shifts."""

__version__ = "0.1.0"
