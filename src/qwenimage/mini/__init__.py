"""qwenimage-mini: the small default model, trained from scratch by this package (see build.py)."""
