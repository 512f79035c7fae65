"""Models as a user brings them: trained by a plain loop, outside robustcv."""
from __future__ import annotations

import torch
from torch import nn


def linear_classifier(x: torch.Tensor, y: torch.Tensor, classes: int = 10, steps: int = 60) -> nn.Module:
    """A linear classifier fitted full-batch with Adam (seeded), in eval mode."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.eval()
