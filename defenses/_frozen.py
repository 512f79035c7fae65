"""Eval mode + frozen parameters for the duration of a block (design rule 2)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def eval_frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` and ``requires_grad_(False)`` on every parameter; both restored on exit.

    Local twin of ``attacks.eval_frozen`` so that training objectives do not depend on an
    attack implementation detail.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
