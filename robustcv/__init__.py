"""robustcv: how robust is your vision model?

Train (if absent), attack with FGSM/PGD across budgets, evaluate defenses adaptively, report.
The Python API mirrors the CLI: :func:`evaluate`, :func:`train`, :func:`with_normalization`,
:func:`load_model` (a checkpoint) and :func:`load_model_file` (a TorchScript or torch.export file).
Importing the package stays cheap: torch loads when one of them is called.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate", "load_model", "load_model_file", "train", "with_normalization"]

_API = ("evaluate", "train", "with_normalization")


def load_model(path, device="cpu"):
    """Load a checkpoint directory; returns ``(RobustModel in eval mode, ModelMetadata)``."""
    from robustcv.checkpoint import load_model as _load

    return _load(path, device=device)


def load_model_file(path, device="cpu"):
    """Load a TorchScript archive or a ``torch.export`` program (``.pt2``) without unpickling;
    returns the model in eval mode (see :mod:`robustcv.model_files`)."""
    from robustcv.model_files import load_model_file as _load

    return _load(path, device=device)


def __getattr__(name: str) -> Any:  # PEP 562: the API module (and torch) load on first use
    if name in _API:
        from robustcv import api

        return getattr(api, name)
    raise AttributeError(f"module 'robustcv' has no attribute {name!r}")
