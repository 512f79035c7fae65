"""Data drift: the classes a checkpoint was trained on against the classes its dataset has now.

A model's outputs follow the class-to-index mapping of its training data. An image folder whose
class folders were renamed, added or removed afterwards maps the same images to other indices,
so attacking it would score the model against the wrong labels; it is refused instead.
"""
from __future__ import annotations

import hashlib
import json
from typing import Sequence

from robustcv.errors import UserError

_MAX_NAMED = 5


def class_fingerprint(classes: Sequence[str]) -> str:
    """A short, stable digest of the class-to-index mapping (the class names in index order)."""
    canonical = json.dumps([str(c) for c in classes], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def describe_class_change(trained: Sequence[str], current: Sequence[str]) -> str:
    """What changed, for people: missing and new classes, or a new order of the same classes."""
    missing = [c for c in trained if c not in set(current)]
    new = [c for c in current if c not in set(trained)]
    parts = []
    if missing:
        parts.append(f"missing {_names(missing)}")
    if new:
        parts.append(f"new {_names(new)}")
    if not parts:
        parts.append("same classes in another order")
    return "; ".join(parts)


def check_same_classes(dataset: str, checkpoint: str, trained: Sequence[str], fingerprint: str,
                       current: Sequence[str]) -> None:
    """``UserError`` when ``current`` does not map classes to indices as at training time.

    Args:
        dataset: the dataset's name; checkpoint: the checkpoint's, both for the message.
        trained: the class names recorded in the checkpoint; fingerprint: their recorded digest
            (empty for checkpoints written before it was recorded).
        current: the class names the dataset has now, in index order.
    """
    expected = fingerprint or class_fingerprint(trained)
    if class_fingerprint(current) == expected:
        return
    raise UserError(f"data drift: the classes of dataset '{dataset}' differ from those checkpoint '{checkpoint}' "
                    f"was trained on ({describe_class_change(trained, current)}); restore them or retrain "
                    "(robustcv train --force)")


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(repr(str(n)) for n in names[:_MAX_NAMED])
    return shown + (f" and {len(names) - _MAX_NAMED} more" if len(names) > _MAX_NAMED else "")
