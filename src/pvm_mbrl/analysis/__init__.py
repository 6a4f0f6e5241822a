"""Analysis of finished runs: the paper's measures and statistics."""
