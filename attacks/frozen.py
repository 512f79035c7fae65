"""``eval_frozen``: the model state every attack runs in (design rule 2)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with frozen parameters; restore both exactly on exit.

    Eval mode removes dropout noise and BatchNorm statistics drift; frozen parameters mean a
    backward pass computes only the input gradient. The previous ``training`` flag of every
    submodule and ``requires_grad`` of every parameter are restored, even when they were mixed
    (e.g. a frozen backbone with a trainable head) and even if the body raises.

    Example:
        >>> with eval_frozen(model):
        ...     x_adv = attack(model, x, y, eps)
    """
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in grads:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, requires_grad in grads:
            p.requires_grad_(requires_grad)
