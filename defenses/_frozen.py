"""Eval mode + frozen parameters for the duration of a block (design rule 2)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn


@contextmanager
def eval_frozen(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` and ``requires_grad_(False)`` on every parameter; both restored on exit.

    The ``training`` flag of every submodule is restored, not just the top one: under a freeze
    plan the frozen backbone is in eval mode inside a training model, and ``model.train(True)``
    would put its BatchNorm layers back in train mode, so the outer loss would update their
    running statistics. Local twin of ``attacks.eval_frozen`` so that training objectives do not
    depend on an attack implementation detail.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for m, training in modes:
            m.training = training
