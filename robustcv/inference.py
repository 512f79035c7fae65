"""Inference helpers shared by training and evaluation (neither imports the other)."""
from __future__ import annotations

import platform

import torch
from torch import nn

import robustcv


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """Logits for a tensor of images, batched, in eval mode (caller restores the mode)."""
    model.eval()
    outs = [model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(outs) if outs else torch.empty(0)


def library_versions() -> dict[str, str]:
    """Versions that matter for reproducing a number."""
    import numpy
    import torchvision

    return {"robustcv": robustcv.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}
