"""robustcv: how robust is your vision model?

Train (if absent), attack with FGSM/PGD across budgets, evaluate defenses adaptively, report.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def load_model(path, device="cpu"):
    """Load a checkpoint directory; returns ``(RobustModel in eval mode, ModelMetadata)``."""
    from robustcv.checkpoint import load_model as _load

    return _load(path, device=device)
