"""Adversarial attacks on PyTorch models in [0, 1] pixel space (depends on torch only)."""
