"""Watching a trained model: what new data and predictions say about it (issue 16)."""
